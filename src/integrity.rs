//! The appliance's integrity key: HMAC-SHA256 tags on what coffre writes and
//! must trust when it reads it back (backup manifests).
//!
//! age recipients are public: anyone who can write to a bucket can encrypt a
//! forged backup to them and describe it in a well-formed manifest. A manifest
//! therefore carries a tag under a secret only the appliance holds, and nothing
//! is listed, restored or verified unless its tag checks.
//!
//! A tag is `hmac-sha256:<hex>` of `domain ‖ 0x00 ‖ canonical JSON`, where the
//! canonical JSON is the document without its tag, object keys sorted, no
//! white space. The domain (`coffre-manifest/1`) keeps a tag of one kind of
//! document from being valid for another.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::config::Config;
use crate::keys::{self, SecretKeyError};

/// The environment variable that holds the key (overrides `[integrity] key_file`).
pub const KEY_ENV: &str = "COFFRE_INTEGRITY_KEY";
/// Shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;
/// Prefix of every tag.
const TAG_PREFIX: &str = "hmac-sha256:";

#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    #[error(
        "no integrity key: set {KEY_ENV} or [integrity] key_file (make one with `head -c 32 /dev/urandom > /etc/coffre/integrity.key`; keep it with the appliance's secrets)"
    )]
    NoKey,
    #[error("integrity key {where_}: {reason}")]
    BadKey { where_: String, reason: String },
}

impl From<SecretKeyError> for IntegrityError {
    fn from(e: SecretKeyError) -> IntegrityError {
        match e {
            SecretKeyError::Unset => IntegrityError::NoKey,
            SecretKeyError::Bad { where_, reason } => IntegrityError::BadKey { where_, reason },
        }
    }
}

/// The secret key of manifest tags. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct IntegrityKey(Vec<u8>);

impl std::fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IntegrityKey(<secret>)")
    }
}

impl IntegrityKey {
    /// Reads the key from [`KEY_ENV`] or the configured file (trailing newlines dropped).
    pub fn load(config: &Config) -> Result<IntegrityKey, IntegrityError> {
        let file = config.integrity.key_file.as_deref();
        keys::read_secret_key(
            KEY_ENV,
            file,
            MIN_KEY_BYTES,
            " (check [integrity] key_file)",
        )
        .map(IntegrityKey)
        .map_err(IntegrityError::from)
    }

    /// A key from raw bytes; `where_` names their origin in errors.
    pub fn from_bytes(key: Vec<u8>, where_: &str) -> Result<IntegrityKey, IntegrityError> {
        keys::check_secret_key(key, where_, MIN_KEY_BYTES)
            .map(IntegrityKey)
            .map_err(IntegrityError::from)
    }

    fn mac(&self, domain: &str, canonical: &[u8]) -> Hmac<Sha256> {
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("hmac accepts keys of any length"),
        };
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(canonical);
        mac
    }

    /// A 32-byte key for another use (`domain` names it), derived with HMAC-SHA256, so
    /// that the integrity key itself is used for one thing only.
    pub fn derive(&self, domain: &str) -> [u8; 32] {
        self.mac(domain, b"derived key")
            .finalize()
            .into_bytes()
            .into()
    }

    /// The tag of a JSON document (its `field` member, if any, left out).
    pub fn tag_json(&self, domain: &str, doc: &Value, field: &str) -> String {
        let canonical = canonical_without(doc, field);
        let tag = self.mac(domain, &canonical).finalize().into_bytes();
        format!("{TAG_PREFIX}{}", hex::encode(tag))
    }

    /// Checks the tag a JSON document carries in its `field` member, in constant time.
    pub fn check_json(&self, domain: &str, doc: &Value, field: &str) -> Result<(), String> {
        let tag = doc.get(field).and_then(Value::as_str).ok_or_else(|| {
            format!("it carries no {field:?} tag (written without an integrity key, or stripped)")
        })?;
        let hex_tag = tag
            .strip_prefix(TAG_PREFIX)
            .ok_or_else(|| format!("its tag is not {TAG_PREFIX}…"))?;
        let bytes = hex::decode(hex_tag).map_err(|_| "its tag is not hexadecimal".to_owned())?;
        let canonical = canonical_without(doc, field);
        self.mac(domain, &canonical)
            .verify_slice(&bytes)
            .map_err(|_| {
                "its tag does not check: it was altered or forged, or written under another integrity key"
                    .to_owned()
            })
    }
}

/// The canonical bytes of `doc` without its `field` member.
fn canonical_without(doc: &Value, field: &str) -> Vec<u8> {
    let mut out = Vec::new();
    match doc {
        Value::Object(map) if map.contains_key(field) => {
            let mut rest = map.clone();
            rest.remove(field);
            write_canonical(&Value::Object(rest), &mut out);
        }
        other => write_canonical(other, &mut out),
    }
    out
}

/// Canonical JSON: objects with sorted keys, no white space; scalars as
/// serde_json prints them (which reads back to the same value).
fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(&Value::String(k.clone()), out);
                out.push(b':');
                write_canonical(&map[k], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => {
            // Printing a scalar Value cannot fail.
            out.extend_from_slice(&serde_json::to_vec(scalar).unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> IntegrityKey {
        IntegrityKey::from_bytes(vec![b; 32], "test").expect("key")
    }

    #[test]
    fn a_tag_checks_whatever_the_key_order_and_layout() {
        let doc: Value =
            serde_json::from_str(r#"{"b":[1,{"y":2,"x":"é"}],"a":null}"#).expect("json");
        let mut signed = doc.clone();
        let tag = key(1).tag_json("d", &doc, "mac");
        signed["mac"] = Value::String(tag);
        let text = serde_json::to_string_pretty(&signed).expect("print");
        let reread: Value = serde_json::from_str(&text).expect("reparse");
        key(1).check_json("d", &reread, "mac").expect("checks");
    }

    #[test]
    fn altered_documents_other_keys_and_other_domains_fail() {
        let doc: Value = serde_json::from_str(r#"{"size":10,"sha256":"ab"}"#).expect("json");
        let mut signed = doc.clone();
        signed["mac"] = Value::String(key(1).tag_json("d", &doc, "mac"));
        let mut altered = signed.clone();
        altered["size"] = Value::from(11);
        assert!(key(1).check_json("d", &altered, "mac").is_err());
        assert!(key(2).check_json("d", &signed, "mac").is_err());
        assert!(key(1).check_json("other", &signed, "mac").is_err());
        let err = key(1).check_json("d", &doc, "mac").expect_err("untagged");
        assert!(err.contains("no \"mac\" tag"), "{err}");
        let mut garbled = signed.clone();
        garbled["mac"] = Value::String("hmac-sha256:zz".into());
        assert!(key(1).check_json("d", &garbled, "mac").is_err());
    }

    #[test]
    fn short_keys_are_refused_and_debug_hides_the_key() {
        assert!(IntegrityKey::from_bytes(b"short\n".to_vec(), "f").is_err());
        let k = key(7);
        assert_eq!(format!("{k:?}"), "IntegrityKey(<secret>)");
    }
}
