//! The manifest: the self-description of one backup, written last.
//!
//! A backup lives under `<source>/<id>/` in each store: one encrypted data object
//! (`data.sql.zst.age`: plain SQL, zstd, then age) and `manifest.json`. The manifest
//! holds no data value: names, sizes, hashes, row counts and row checksums.
//!
//! Every manifest carries a `mac`: an HMAC-SHA256 tag under the appliance's
//! integrity key (see [`crate::integrity`]); [`Manifest::parse`] refuses one
//! whose tag does not check.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dump::DumpStats;
use crate::integrity::IntegrityKey;

/// Format tag of manifests written by this version.
pub const FORMAT: &str = "coffre-backup/1";
/// Name of the data object inside a backup's folder.
pub const DATA_OBJECT: &str = "data.sql.zst.age";
/// Name of the manifest inside a backup's folder.
pub const MANIFEST_OBJECT: &str = "manifest.json";
/// Manifests larger than this are refused (a real one is a few KiB per table).
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// Domain of manifest tags.
const MAC_DOMAIN: &str = "coffre-manifest/1";
/// The member of `manifest.json` that holds the tag.
const MAC_FIELD: &str = "mac";

/// Raw copy of the database, or an anonymized one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    Full,
    Anonymized,
}

impl BackupKind {
    /// As written in manifests: `full` or `anonymized`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Full => "full",
            BackupKind::Anonymized => "anonymized",
        }
    }
}

/// One stored object of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compression {
    pub algorithm: String,
    pub level: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    pub algorithm: String,
    pub recipients: Vec<String>,
}

/// What `manifest.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub id: String,
    pub source: String,
    /// `postgres` or `sqlite`: what restores it.
    pub source_type: String,
    pub kind: BackupKind,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub coffre_version: String,
    /// The dump tool and its version (`pg_dump (PostgreSQL) 15.19`, `sqlite 3.49`).
    pub dump_tool: String,
    pub compression: Compression,
    pub encryption: Encryption,
    pub plaintext_bytes: u64,
    pub objects: Vec<ObjectEntry>,
    pub tables: DumpStats,
    /// `schema.table.column` under a single-column unique constraint (schema
    /// metadata, so that an anonymized copy made later keeps them unique).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique_columns: Vec<String>,
    /// For anonymized backups: SHA-256 of the policy file that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_sha256: Option<String>,
    /// For anonymized copies of a backup: the id of the backup it was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived_from: Option<String>,
    /// `hmac-sha256:…` of the rest, under the integrity key (set by [`Manifest::to_json`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl Manifest {
    /// The data object entry.
    pub fn data(&self) -> Option<&ObjectEntry> {
        self.objects.iter().find(|o| o.name == DATA_OBJECT)
    }

    /// The manifest as written to the stores: pretty JSON with its tag.
    pub fn to_json(&self, key: &IntegrityKey) -> Vec<u8> {
        let mut doc = serde_json::to_value(self).unwrap_or_default();
        let tag = key.tag_json(MAC_DOMAIN, &doc, MAC_FIELD);
        if let serde_json::Value::Object(map) = &mut doc {
            map.insert(MAC_FIELD.to_owned(), serde_json::Value::String(tag));
        }
        // Serializing plain data to a Vec cannot fail.
        serde_json::to_vec_pretty(&doc).unwrap_or_default()
    }

    /// Parses a manifest read from `where_` (for messages), checks its tag under
    /// `key`, then its contents.
    pub fn parse(
        bytes: &[u8],
        where_: &str,
        key: &IntegrityKey,
    ) -> Result<Manifest, ManifestError> {
        let invalid = |reason: String| ManifestError::Invalid {
            location: where_.to_owned(),
            reason,
        };
        let doc: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        key.check_json(MAC_DOMAIN, &doc, MAC_FIELD)
            .map_err(|reason| ManifestError::Forged {
                location: where_.to_owned(),
                reason,
            })?;
        let m: Manifest = serde_json::from_value(doc).map_err(|e| invalid(e.to_string()))?;
        if m.format != FORMAT {
            return Err(invalid(format!(
                "format {:?} is not {FORMAT:?} (written by a newer coffre?)",
                m.format
            )));
        }
        if m.data().is_none() {
            return Err(invalid(format!("it lists no {DATA_OBJECT}")));
        }
        Ok(m)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest {location} is invalid: {reason}")]
    Invalid { location: String, reason: String },
    #[error("manifest {location} is rejected: {reason}")]
    Forged { location: String, reason: String },
}

/// Key of an object of a backup, relative to the store root.
pub fn object_key(source: &str, id: &str, name: &str) -> String {
    format!("{source}/{id}/{name}")
}

/// A new backup id: UTC start time to the millisecond, then 4 random hex digits
/// (`20261122T193045.123Z-7f3a`). Ids sort in start-time order.
pub fn new_backup_id(now: DateTime<Utc>) -> String {
    let suffix: u16 = rand::random();
    format!("{}-{suffix:04x}", now.format("%Y%m%dT%H%M%S%.3fZ"))
}

/// True for strings shaped like a backup id (used to ignore foreign folders).
pub fn looks_like_backup_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 25
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'.'
        && b[16..19].iter().all(u8::is_ascii_digit)
        && b[19] == b'Z'
        && b[20] == b'-'
        && b[21..].iter().all(u8::is_ascii_hexdigit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_recognised() {
        let id = new_backup_id(Utc::now());
        assert!(looks_like_backup_id(&id), "{id}");
        assert!(!looks_like_backup_id("tmp"));
        let earlier = new_backup_id(Utc::now() - chrono::Duration::milliseconds(5));
        assert!(earlier < id, "{earlier} sorts before {id}");
    }

    fn sample() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            id: "20260101T000000.000Z-0000".into(),
            source: "s".into(),
            source_type: "sqlite".into(),
            kind: BackupKind::Full,
            started_at: Utc::now(),
            finished_at: Utc::now(),
            coffre_version: "0".into(),
            dump_tool: "t".into(),
            compression: Compression {
                algorithm: "zstd".into(),
                level: 3,
            },
            encryption: Encryption {
                algorithm: "age".into(),
                recipients: vec![],
            },
            plaintext_bytes: 1,
            objects: vec![ObjectEntry {
                name: DATA_OBJECT.into(),
                size: 1,
                sha256: "00".into(),
            }],
            tables: DumpStats::default(),
            unique_columns: vec![],
            policy_sha256: None,
            derived_from: None,
            mac: None,
        }
    }

    #[test]
    fn forged_and_untagged_manifests_are_rejected() {
        let key = IntegrityKey::from_bytes(vec![3; 32], "test").expect("key");
        let other = IntegrityKey::from_bytes(vec![4; 32], "test").expect("key");
        let json = sample().to_json(&key);
        // Another key (an attacker's) makes a well-formed manifest with a wrong tag.
        let err = Manifest::parse(&sample().to_json(&other), "t:k", &key).expect_err("forged");
        assert!(matches!(err, ManifestError::Forged { .. }), "{err}");
        assert!(err.to_string().contains("t:k"), "{err}");
        // One changed value breaks the tag.
        let text = String::from_utf8(json).expect("utf8");
        let altered = text.replace("\"plaintext_bytes\": 1", "\"plaintext_bytes\": 2");
        assert_ne!(altered, text);
        assert!(Manifest::parse(altered.as_bytes(), "t:k", &key).is_err());
        // So does dropping it.
        let mut doc: serde_json::Value = serde_json::from_str(&text).expect("json");
        doc.as_object_mut().expect("object").remove("mac");
        let untagged = serde_json::to_vec(&doc).expect("print");
        assert!(Manifest::parse(&untagged, "t:k", &key).is_err());
    }

    #[test]
    fn manifest_round_trips_and_rejects_unknown_format() {
        let m = sample();
        let key = IntegrityKey::from_bytes(vec![3; 32], "test").expect("key");
        let json = m.to_json(&key);
        let back = Manifest::parse(&json, "x", &key).expect("parse");
        assert!(
            back.mac
                .as_deref()
                .is_some_and(|t| t.starts_with("hmac-sha256:"))
        );
        assert_eq!(Manifest { mac: None, ..back }, m);
        let mut bad = m.clone();
        bad.format = "other/9".into();
        assert!(Manifest::parse(&bad.to_json(&key), "x", &key).is_err());
    }
}
