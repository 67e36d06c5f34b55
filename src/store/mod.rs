//! Object stores: the `Store` trait and its backends (local directory, S3).
//!
//! Keys are relative to the target's root (`path` for fs, `prefix` for S3) and use `/`
//! as separator. A streamed put is all-or-nothing: until the body stream ends cleanly the
//! object is invisible to `list` and `get`, and an error item in the body aborts it
//! (S3 multipart upload aborted, fs partial file removed).

pub mod fs;
pub mod s3;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

/// A stream of byte chunks; an `Err` item means the producer failed and the
/// object being written must be abandoned.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// One stored object, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Key relative to the store root.
    pub key: String,
    pub size: u64,
}

/// Errors of a store, each naming the target and the key involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("target {target}: object {key} not found")]
    NotFound { target: String, key: String },
    #[error("target {target}: {op} {key}: {message}")]
    Backend {
        target: String,
        op: &'static str,
        key: String,
        message: String,
    },
    #[error("target {target}: upload of {key} abandoned: {cause}")]
    Aborted {
        target: String,
        key: String,
        cause: String,
    },
}

impl StoreError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }
}

/// The seam between coffre and where backups live. Short on purpose: retries,
/// throttling or prefixes are wrappers implementing the same trait.
#[async_trait]
pub trait Store: Send + Sync {
    /// The target's name in the configuration.
    fn name(&self) -> &str;
    /// Where it writes, for humans (`s3://bucket/prefix`, `/var/backups/coffre`).
    fn location(&self) -> String;
    /// Streams `body` into `key`; returns the bytes written. The object appears
    /// only if the stream ends without error and the backend confirms it.
    async fn put_stream(&self, key: &str, body: ByteStream) -> Result<u64, StoreError>;
    /// Writes a small object at once (manifests).
    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<(), StoreError>;
    /// Streams an object back.
    async fn get(&self, key: &str) -> Result<ByteStream, StoreError>;
    /// Reads a small object whole (manifests); refuses objects over `max_bytes`.
    async fn get_bytes(&self, key: &str, max_bytes: u64) -> Result<Bytes, StoreError>;
    /// Lists complete objects whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError>;
    /// Deletes an object; deleting a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Removes what interrupted writes under `key_prefix` left behind (S3
    /// incomplete multipart uploads, temporary files); returns how many. Only
    /// call it when no write under that prefix can be running.
    async fn cleanup_incomplete(&self, key_prefix: &str) -> Result<usize, StoreError>;
}

pub type DynStore = Arc<dyn Store>;
