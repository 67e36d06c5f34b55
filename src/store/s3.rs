//! S3 store (AWS or any S3-compatible server): streamed puts as a single `PutObject`
//! or a multipart upload with bounded memory, aborted on every error path.
//!
//! Transient failures (throttling, 5xx, dropped connections, timeouts) are retried
//! by the SDK's standard retry strategy with exponential backoff and jitter (up to
//! [`MAX_ATTEMPTS`] attempts per request); each attempt is bounded by the target's
//! stall timeout, so a region that stops answering fails instead of hanging.
//! With Object Lock, every object is written with a retention mode and date, and
//! deleting a key deletes each of its versions (a plain delete in a versioned,
//! locked bucket would only hide the object behind a delete marker).

use std::fmt;
use std::io;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectIdentifier, ObjectLockMode,
};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::task::{JoinError, JoinSet};

use super::fs::check_key;
use super::{ByteStream, ObjectMeta, Store, StoreError};

/// Smallest part S3 accepts (except the last one).
pub const MIN_PART_SIZE: usize = 5 << 20;
/// Largest part S3 accepts.
pub const MAX_PART_SIZE: usize = 5 << 30;
/// Most parts in one multipart upload.
const MAX_PARTS: i32 = 10_000;
/// Attempts per request (first try included) before an error is final.
pub const MAX_ATTEMPTS: u32 = 5;
/// Parts uploaded concurrently; with the part being filled, bounds memory to
/// about `(MAX_PARTS_IN_FLIGHT + 1) × part_size`.
const MAX_PARTS_IN_FLIGHT: usize = 2;

/// Where and how to reach one S3 target.
#[derive(Clone)]
pub struct S3Params {
    /// The target's name in the configuration.
    pub name: String,
    pub bucket: String,
    pub region: String,
    /// For S3-compatible servers (uses path-style addressing); `None` for AWS.
    pub endpoint: Option<String>,
    /// Prepended to every key: empty or ending in `/`.
    pub prefix: String,
    /// Static credentials; both `None` means the default AWS credential chain.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Size of a multipart upload part, at least 5 MiB.
    pub part_size: usize,
    /// Longest wait for one request attempt (and for a connection: a quarter of it).
    pub stall_timeout: Duration,
    /// Object Lock applied to every object written, if any.
    pub object_lock: Option<ObjectLock>,
}

/// S3 Object Lock settings of a target: every object written gets this mode and
/// a retain-until date `days` after its upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLock {
    /// `GOVERNANCE` or `COMPLIANCE`.
    pub mode: String,
    pub days: u32,
}

impl fmt::Debug for S3Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Params")
            .field("name", &self.name)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .field(
                "access_key_id",
                &self.access_key_id.as_ref().map(|_| "<set>"),
            )
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("part_size", &self.part_size)
            .field("stall_timeout", &self.stall_timeout)
            .field("object_lock", &self.object_lock)
            .finish()
    }
}

/// A store in an S3 bucket, under a key prefix.
#[derive(Clone)]
pub struct S3Store {
    name: String,
    bucket: String,
    prefix: String,
    region: String,
    endpoint: Option<String>,
    part_size: usize,
    object_lock: Option<ObjectLock>,
    client: Client,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("name", &self.name)
            .field("location", &self.location())
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// Checks the parameters and builds the client; makes no network call.
    pub async fn connect(p: S3Params) -> Result<S3Store, StoreError> {
        let invalid = |message: String| StoreError::Backend {
            target: p.name.clone(),
            op: "connect",
            key: format!("s3://{}/{}", p.bucket, p.prefix),
            message,
        };
        if p.bucket.is_empty() {
            return Err(invalid("bucket is empty".into()));
        }
        if !p.prefix.is_empty() && (!p.prefix.ends_with('/') || p.prefix.starts_with('/')) {
            return Err(invalid(format!(
                "prefix {:?} must be empty or end with '/' (and not start with '/')",
                p.prefix
            )));
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&p.part_size) {
            return Err(invalid(format!(
                "part size {} is outside S3's limits ({MIN_PART_SIZE}..={MAX_PART_SIZE} bytes)",
                p.part_size
            )));
        }
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).region(Region::new(p.region.clone()));
        match (&p.access_key_id, &p.secret_access_key) {
            (Some(id), Some(secret)) => {
                loader = loader.credentials_provider(Credentials::new(
                    id.clone(),
                    secret.clone(),
                    None,
                    None,
                    "coffre-config",
                ));
            }
            (None, None) => {}
            _ => {
                return Err(invalid(
                    "give both access_key_id and secret_access_key, or neither \
                     (to use the default AWS credential chain)"
                        .into(),
                ));
            }
        }
        let sdk_config = loader.load().await;
        let mut conf = aws_sdk_s3::config::Builder::from(&sdk_config)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(20)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(p.stall_timeout / 4)
                    .operation_attempt_timeout(p.stall_timeout)
                    .build(),
            );
        if let Some(endpoint) = &p.endpoint {
            conf = conf.endpoint_url(endpoint).force_path_style(true);
        }
        Ok(S3Store {
            client: Client::from_conf(conf.build()),
            name: p.name,
            bucket: p.bucket,
            prefix: p.prefix,
            region: p.region,
            endpoint: p.endpoint,
            part_size: p.part_size,
            object_lock: p.object_lock,
        })
    }

    /// The Object Lock mode and retain-until date of an object written now.
    fn lock_now(&self) -> Option<(ObjectLockMode, aws_smithy_types::DateTime)> {
        self.object_lock.as_ref().map(|l| {
            let until = chrono::Utc::now() + chrono::Duration::days(i64::from(l.days));
            (
                ObjectLockMode::from(l.mode.as_str()),
                aws_smithy_types::DateTime::from_secs(until.timestamp()),
            )
        })
    }

    /// Aborts every incomplete multipart upload whose key (relative to the prefix)
    /// starts with `key_prefix`, such as those left by a crash; returns how many.
    pub async fn abort_incomplete_uploads(&self, key_prefix: &str) -> Result<usize, StoreError> {
        let full_prefix = format!("{}{key_prefix}", self.prefix);
        let mut aborted = 0;
        let mut key_marker: Option<String> = None;
        let mut upload_id_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(&full_prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(upload_id_marker.take())
                .send()
                .await
                .map_err(|e| self.sdk_error("list uploads", &full_prefix, &e))?;
            for upload in page.uploads() {
                let (Some(key), Some(upload_id)) = (upload.key(), upload.upload_id()) else {
                    continue;
                };
                match self.send_abort(key, upload_id).await {
                    Ok(_) => {
                        tracing::info!(target_name = %self.name, key, upload_id, "incomplete upload aborted");
                        aborted += 1;
                    }
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_upload()) => {}
                    Err(e) => return Err(self.sdk_error("abort upload", key, &e)),
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            upload_id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && upload_id_marker.is_none() {
                break;
            }
        }
        Ok(aborted)
    }

    /// Deletes every version (and delete marker) of `key` (a full key): in a
    /// locked bucket this is what removes the data, and what the lock refuses
    /// before the retain-until date (the error says so).
    async fn delete_versions(&self, key: &str) -> Result<(), StoreError> {
        let listed = self
            .client
            .list_object_versions()
            .bucket(&self.bucket)
            .prefix(key)
            .send()
            .await
            .map_err(|e| self.sdk_error("delete", key, &e))?;
        let ids: Vec<ObjectIdentifier> = listed
            .versions()
            .iter()
            .filter(|v| v.key() == Some(key))
            .map(|v| (v.key(), v.version_id()))
            .chain(
                listed
                    .delete_markers()
                    .iter()
                    .filter(|m| m.key() == Some(key))
                    .map(|m| (m.key(), m.version_id())),
            )
            .filter_map(|(k, v)| {
                ObjectIdentifier::builder()
                    .key(k.unwrap_or(key))
                    .set_version_id(v.map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        for id in ids {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(id.key())
                .set_version_id(id.version_id().map(str::to_owned))
                .send()
                .await
                .map_err(|e| {
                    let mut err = self.sdk_error("delete", key, &e);
                    if let StoreError::Backend { message, .. } = &mut err {
                        message.push_str(" (Object Lock: a locked version cannot be deleted before its retain-until date)");
                    }
                    err
                })?;
        }
        tracing::debug!(target_name = %self.name, key, "object versions deleted");
        Ok(())
    }

    fn full_key(&self, op: &'static str, key: &str) -> Result<String, StoreError> {
        check_key(key).map_err(|message| StoreError::Backend {
            target: self.name.clone(),
            op,
            key: key.to_owned(),
            message,
        })?;
        Ok(format!("{}{key}", self.prefix))
    }

    /// Describes an SDK error: the service's code and message, or the whole error chain
    /// with a hint when the endpoint could not be reached. Never includes credentials.
    fn describe<E>(&self, err: &SdkError<E, HttpResponse>) -> String
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match err {
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                match (err.code(), err.message()) {
                    (Some(code), Some(message)) => format!("{code}: {message} (HTTP {status})"),
                    (Some(code), None) => format!("{code} (HTTP {status})"),
                    _ => format!("{} (HTTP {status})", error_chain(err)),
                }
            }
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                let hint = match &self.endpoint {
                    Some(endpoint) => format!("is the endpoint {endpoint} reachable?"),
                    None => format!("is S3 in region {} reachable?", self.region),
                };
                format!("{} ({hint})", error_chain(err))
            }
            _ => error_chain(err),
        }
    }

    fn sdk_error<E>(
        &self,
        op: &'static str,
        key: &str,
        err: &SdkError<E, HttpResponse>,
    ) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        StoreError::Backend {
            target: self.name.clone(),
            op,
            key: key.to_owned(),
            message: self.describe(err),
        }
    }

    fn backend(&self, op: &'static str, key: &str, message: String) -> StoreError {
        StoreError::Backend {
            target: self.name.clone(),
            op,
            key: key.to_owned(),
            message,
        }
    }

    fn body_failed(&self, key: &str, e: &io::Error) -> StoreError {
        StoreError::Aborted {
            target: self.name.clone(),
            key: key.to_owned(),
            cause: format!("body stream failed: {e}"),
        }
    }

    async fn put_object(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        let len = data.len();
        let lock = self.lock_now();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(i64::try_from(len).unwrap_or(i64::MAX))
            // Object Lock needs an integrity checksum on the request.
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .set_object_lock_mode(lock.as_ref().map(|l| l.0.clone()))
            .set_object_lock_retain_until_date(lock.map(|l| l.1))
            .body(SdkByteStream::from(data))
            .send()
            .await
            .map_err(|e| self.sdk_error("put", key, &e))?;
        tracing::debug!(target_name = %self.name, key, bytes = len, "object written");
        Ok(())
    }

    /// Uploads `first` and the rest of `parts` as one multipart upload; aborts it on error.
    async fn put_multipart(
        &self,
        key: &str,
        first: Bytes,
        parts: &mut PartReader,
    ) -> Result<u64, StoreError> {
        let lock = self.lock_now();
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .set_object_lock_mode(lock.as_ref().map(|l| l.0.clone()))
            .set_object_lock_retain_until_date(lock.map(|l| l.1))
            .send()
            .await
            .map_err(|e| self.sdk_error("put", key, &e))?;
        let Some(upload_id) = created.upload_id().map(str::to_owned) else {
            return Err(self.backend(
                "put",
                key,
                "CreateMultipartUpload returned no upload id".into(),
            ));
        };
        // Covers the future being dropped (cancelled job); error paths abort explicitly below.
        let mut guard = AbortOnDrop {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            upload_id: upload_id.clone(),
            armed: true,
        };
        let mut tasks = JoinSet::new();
        let result = self
            .upload_parts(key, &upload_id, first, parts, &mut tasks)
            .await;
        match result {
            Ok(total) => {
                guard.armed = false;
                tracing::debug!(target_name = %self.name, key, bytes = total, "multipart object written");
                Ok(total)
            }
            Err(e) => {
                // No part may land after the abort.
                tasks.shutdown().await;
                self.abort_upload(key, &upload_id).await;
                guard.armed = false;
                Err(e)
            }
        }
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first: Bytes,
        parts: &mut PartReader,
        tasks: &mut JoinSet<PartResult>,
    ) -> Result<u64, StoreError> {
        let mut completed = Vec::new();
        let mut number = 0i32;
        let mut total = 0u64;
        let mut next = Some(first);
        while let Some(part) = next {
            while tasks.len() >= MAX_PARTS_IN_FLIGHT {
                let joined = tasks.join_next().await;
                completed.push(self.joined_part(key, joined)?);
            }
            number += 1;
            if number > MAX_PARTS {
                return Err(self.backend(
                    "put",
                    key,
                    format!(
                        "object needs more than {MAX_PARTS} parts of {} bytes: raise part_size",
                        self.part_size
                    ),
                ));
            }
            total += part.len() as u64;
            tasks.spawn(upload_part(
                self.client.clone(),
                self.bucket.clone(),
                key.to_owned(),
                upload_id.to_owned(),
                number,
                part,
            ));
            next = parts.next().await.map_err(|e| self.body_failed(key, &e))?;
        }
        while let Some(joined) = tasks.join_next().await {
            completed.push(self.joined_part(key, Some(joined))?);
        }
        completed.sort_by_key(|p| p.part_number());
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.sdk_error("complete upload", key, &e))?;
        Ok(total)
    }

    fn joined_part(
        &self,
        key: &str,
        joined: Option<Result<PartResult, JoinError>>,
    ) -> Result<CompletedPart, StoreError> {
        match joined {
            Some(Ok(Ok(part))) => Ok(part),
            Some(Ok(Err((number, failure)))) => Err(self.backend(
                "put",
                key,
                format!("upload part {number}: {}", self.describe(&failure)),
            )),
            Some(Err(e)) => Err(self.backend("put", key, format!("part upload task failed: {e}"))),
            None => Err(self.backend("put", key, "no part upload in flight".into())),
        }
    }

    /// AbortMultipartUpload of `key` (a full key, prefix included).
    async fn send_abort(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<
        aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadOutput,
        SdkError<
            aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadError,
            HttpResponse,
        >,
    > {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
    }

    /// Best-effort abort of a multipart upload; failures are logged.
    async fn abort_upload(&self, key: &str, upload_id: &str) {
        match self.send_abort(key, upload_id).await {
            Ok(_) => {
                tracing::info!(target_name = %self.name, key, upload_id, "multipart upload aborted")
            }
            Err(e) => tracing::warn!(
                target_name = %self.name,
                key,
                upload_id,
                error = %self.describe(&e),
                "cannot abort multipart upload; abort_incomplete_uploads can clean it up"
            ),
        }
    }

    /// Reads a whole GetObject body, refusing more than `max_bytes`.
    async fn read_limited(
        &self,
        key: &str,
        mut body: SdkByteStream,
        max_bytes: u64,
    ) -> Result<Bytes, StoreError> {
        let mut data = BytesMut::new();
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| self.backend("get", key, error_chain(&e)))?
        {
            if (data.len() + chunk.len()) as u64 > max_bytes {
                return Err(self.backend(
                    "get",
                    key,
                    format!("object is over the limit of {max_bytes} bytes"),
                ));
            }
            data.extend_from_slice(&chunk);
        }
        Ok(data.freeze())
    }

    async fn get_object(
        &self,
        key: &str,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, StoreError> {
        self.client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    StoreError::NotFound {
                        target: self.name.clone(),
                        key: key.to_owned(),
                    }
                } else {
                    self.sdk_error("get", key, &e)
                }
            })
    }
}

/// An error and its sources joined by ": " (what `DisplayErrorContext` shows, without
/// its trailing `Debug` dump), skipping a source whose text its parent already ends with.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

type UploadPartFailure =
    SdkError<aws_sdk_s3::operation::upload_part::UploadPartError, HttpResponse>;
/// What a part upload task returns: the completed part, or its number and the failure.
type PartResult = Result<CompletedPart, (i32, UploadPartFailure)>;

async fn upload_part(
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    number: i32,
    data: Bytes,
) -> PartResult {
    let len = data.len();
    let out = client
        .upload_part()
        .bucket(bucket)
        .key(&key)
        .upload_id(upload_id)
        .part_number(number)
        .content_length(i64::try_from(len).unwrap_or(i64::MAX))
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(SdkByteStream::from(data))
        .send()
        .await
        .map_err(|e| (number, e))?;
    tracing::trace!(key, part = number, bytes = len, "part uploaded");
    Ok(CompletedPart::builder()
        .part_number(number)
        .set_e_tag(out.e_tag().map(str::to_owned))
        .set_checksum_crc32(out.checksum_crc32().map(str::to_owned))
        .build())
}

/// Aborts a multipart upload from a spawned task if dropped while armed.
struct AbortOnDrop {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    armed: bool,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(key = %self.key, upload_id = %self.upload_id, "upload dropped outside a runtime: left incomplete");
            return;
        };
        let (client, bucket) = (self.client.clone(), std::mem::take(&mut self.bucket));
        let (key, upload_id) = (
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.upload_id),
        );
        runtime.spawn(async move {
            let result = client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(&key)
                .upload_id(&upload_id)
                .send()
                .await;
            match result {
                Ok(_) => tracing::info!(key, upload_id, "cancelled multipart upload aborted"),
                Err(e) => tracing::warn!(key, upload_id, error = %error_chain(&e), "cannot abort cancelled multipart upload"),
            }
        });
    }
}

/// Cuts a body stream into parts of exactly `part_size` bytes (the last one shorter),
/// each in its own allocation so that a part in flight pins nothing else.
struct PartReader {
    body: ByteStream,
    carry: Bytes,
    part_size: usize,
    ended: bool,
}

impl PartReader {
    fn new(body: ByteStream, part_size: usize) -> PartReader {
        PartReader {
            body,
            carry: Bytes::new(),
            part_size,
            ended: false,
        }
    }

    /// The next part, or `None` once the body is exhausted.
    async fn next(&mut self) -> io::Result<Option<Bytes>> {
        let mut buf = BytesMut::new();
        loop {
            if !self.carry.is_empty() {
                if buf.capacity() == 0 {
                    buf.reserve(self.part_size);
                }
                let n = (self.part_size - buf.len()).min(self.carry.len());
                buf.extend_from_slice(&self.carry.split_to(n));
                if buf.len() == self.part_size {
                    return Ok(Some(buf.freeze()));
                }
            }
            if self.ended {
                break;
            }
            match self.body.next().await {
                None => self.ended = true,
                Some(Err(e)) => return Err(e),
                Some(Ok(chunk)) => self.carry = chunk,
            }
        }
        Ok(if buf.is_empty() {
            None
        } else {
            Some(buf.freeze())
        })
    }

    /// Whether the body is known to be exhausted.
    fn is_done(&self) -> bool {
        self.ended && self.carry.is_empty()
    }
}

#[async_trait]
impl Store for S3Store {
    fn name(&self) -> &str {
        &self.name
    }

    fn location(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => format!("s3://{}/{} at {endpoint}", self.bucket, self.prefix),
            None => format!("s3://{}/{} in {}", self.bucket, self.prefix, self.region),
        }
    }

    async fn put_stream(&self, key: &str, body: ByteStream) -> Result<u64, StoreError> {
        let key = self.full_key("put", key)?;
        let mut parts = PartReader::new(body, self.part_size);
        let first = parts.next().await.map_err(|e| self.body_failed(&key, &e))?;
        match first {
            None => self.put_object(&key, Bytes::new()).await.map(|()| 0),
            Some(data) if parts.is_done() => {
                let len = data.len() as u64;
                self.put_object(&key, data).await.map(|()| len)
            }
            Some(data) => self.put_multipart(&key, data, &mut parts).await,
        }
    }

    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        let key = self.full_key("put", key)?;
        self.put_object(&key, data).await
    }

    async fn get(&self, key: &str) -> Result<ByteStream, StoreError> {
        let key = self.full_key("get", key)?;
        let out = self.get_object(&key).await?;
        let target = self.name.clone();
        let stream = futures::stream::try_unfold(out.body, move |mut body| {
            let (target, key) = (target.clone(), key.clone());
            async move {
                match body.try_next().await {
                    Ok(Some(chunk)) => Ok(Some((chunk, body))),
                    Ok(None) => Ok(None),
                    Err(e) => Err(io::Error::other(format!(
                        "target {target}: get {key}: {}",
                        error_chain(&e)
                    ))),
                }
            }
        });
        Ok(stream.boxed())
    }

    async fn get_bytes(&self, key: &str, max_bytes: u64) -> Result<Bytes, StoreError> {
        let key = self.full_key("get", key)?;
        let out = self.get_object(&key).await?;
        if let Some(len) = out.content_length()
            && u64::try_from(len).unwrap_or(0) > max_bytes
        {
            return Err(self.backend(
                "get",
                &key,
                format!("object is {len} bytes, over the limit of {max_bytes}"),
            ));
        }
        self.read_limited(&key, out.body, max_bytes).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let full_prefix = format!("{}{prefix}", self.prefix);
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full_prefix)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.sdk_error("list", &full_prefix, &e))?;
            for object in page.contents() {
                let Some(key) = object.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                objects.push(ObjectMeta {
                    key: key.to_owned(),
                    size: object
                        .size()
                        .and_then(|s| u64::try_from(s).ok())
                        .unwrap_or(0),
                });
            }
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let key = self.full_key("delete", key)?;
        if self.object_lock.is_some() {
            return self.delete_versions(&key).await;
        }
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| self.sdk_error("delete", &key, &e))?;
        tracing::debug!(target_name = %self.name, key, "object deleted");
        Ok(())
    }

    async fn cleanup_incomplete(&self, key_prefix: &str) -> Result<usize, StoreError> {
        self.abort_incomplete_uploads(key_prefix).await
    }
}
