//! Local directory store: one file per key under a root directory, written atomically
//! (temporary sibling file, `fsync`, rename, directory `fsync`).

use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio_util::io::ReaderStream;

use super::{ByteStream, ObjectMeta, Store, StoreError};

/// Marker between a final file name and the random suffix of its temporary file.
const PARTIAL_MARKER: &str = ".partial-";
/// Chunk size of streamed reads and size of the write buffer.
const CHUNK: usize = 1 << 20;

/// Checks that `key` is a relative `/`-separated path that maps to exactly one file
/// under a store root, the same way on every backend.
pub(crate) fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("invalid key: empty".into());
    }
    if key.starts_with('/') {
        return Err(format!(
            "invalid key {key:?}: must be relative (no leading '/')"
        ));
    }
    if key.contains('\\') {
        return Err(format!(
            "invalid key {key:?}: use '/' as separator, not '\\'"
        ));
    }
    if key.contains('\0') {
        return Err(format!("invalid key {key:?}: contains a NUL byte"));
    }
    if key.contains(PARTIAL_MARKER) {
        return Err(format!(
            "invalid key {key:?}: {PARTIAL_MARKER:?} is reserved for temporary files"
        ));
    }
    for segment in key.split('/') {
        match segment {
            "" => return Err(format!("invalid key {key:?}: empty path segment")),
            "." | ".." => {
                return Err(format!(
                    "invalid key {key:?}: '.' and '..' segments are not allowed"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A store writing into a local directory (a mounted volume, a NAS).
#[derive(Debug, Clone)]
pub struct FsStore {
    name: String,
    root: PathBuf,
}

impl FsStore {
    /// A store named `name` (the target's name) keeping its objects under `root`.
    /// Touches nothing on disk: the root is created by the first write.
    pub fn new(name: impl Into<String>, root: PathBuf) -> FsStore {
        FsStore {
            name: name.into(),
            root,
        }
    }

    /// The path of `key`, after checking the key.
    fn path_of(&self, op: &'static str, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key).map_err(|message| self.backend(op, key, message))?;
        Ok(key.split('/').fold(self.root.clone(), |p, s| p.join(s)))
    }

    fn backend(&self, op: &'static str, key: &str, message: impl Into<String>) -> StoreError {
        StoreError::Backend {
            target: self.name.clone(),
            op,
            key: key.to_owned(),
            message: message.into(),
        }
    }

    fn io_error(&self, op: &'static str, key: &str, path: &Path, e: &io::Error) -> StoreError {
        self.backend(op, key, format!("{}: {e}", path.display()))
    }

    fn not_found(&self, key: &str) -> StoreError {
        StoreError::NotFound {
            target: self.name.clone(),
            key: key.to_owned(),
        }
    }

    fn aborted(&self, key: &str, cause: String) -> StoreError {
        StoreError::Aborted {
            target: self.name.clone(),
            key: key.to_owned(),
            cause,
        }
    }

    /// Creates the parent directory of `path` and a fresh temporary file beside it.
    /// Retries when a concurrent `delete` prunes the directory in between.
    async fn create_temp(&self, path: &Path) -> io::Result<(PathBuf, tokio::fs::File)> {
        let parent = path.parent().unwrap_or(&self.root);
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut attempt = 0;
        loop {
            tokio::fs::create_dir_all(parent).await?;
            let temp = parent.join(format!(
                "{file_name}{PARTIAL_MARKER}{:016x}",
                rand::random::<u64>()
            ));
            match tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)
                .await
            {
                Ok(file) => return Ok((temp, file)),
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 3 => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes `body` into the open temporary file and makes it durable.
    async fn write_body(
        &self,
        key: &str,
        file: tokio::fs::File,
        mut body: ByteStream,
    ) -> Result<u64, StoreError> {
        let mut out = BufWriter::with_capacity(CHUNK, file);
        let mut written = 0u64;
        while let Some(item) = body.next().await {
            let chunk = item.map_err(|e| self.aborted(key, format!("body stream failed: {e}")))?;
            out.write_all(&chunk)
                .await
                .map_err(|e| self.aborted(key, format!("write failed: {e}")))?;
            written += chunk.len() as u64;
        }
        out.flush()
            .await
            .map_err(|e| self.aborted(key, format!("write failed: {e}")))?;
        out.get_mut()
            .sync_all()
            .await
            .map_err(|e| self.aborted(key, format!("fsync failed: {e}")))?;
        Ok(written)
    }

    /// Removes the empty directories between `path`'s parent and the root.
    async fn prune_empty_dirs(&self, path: &Path) {
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root || !d.starts_with(&self.root) {
                break;
            }
            if tokio::fs::remove_dir(d).await.is_err() {
                // Not empty (or already gone, or busy): stop there.
                break;
            }
            dir = d.parent();
        }
    }
}

/// Removes a temporary file if the write is dropped before it finishes
/// (a cancelled backup); disarmed once the file is renamed or removed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take()
            && let Err(e) = std::fs::remove_file(&path)
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove temporary file");
        }
    }
}

/// fsyncs a directory so that a rename in it survives a crash.
async fn sync_dir(dir: &Path) -> io::Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await
}

#[async_trait]
impl Store for FsStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn put_stream(&self, key: &str, body: ByteStream) -> Result<u64, StoreError> {
        let path = self.path_of("put", key)?;
        let (temp, file) = self
            .create_temp(&path)
            .await
            .map_err(|e| self.aborted(key, format!("{}: {e}", path.display())))?;
        let mut guard = TempGuard(Some(temp.clone()));
        let written = match self.write_body(key, file, body).await {
            Ok(n) => n,
            Err(e) => {
                guard.0 = None;
                if let Err(rm) = tokio::fs::remove_file(&temp).await {
                    tracing::warn!(target_name = %self.name, key, path = %temp.display(), error = %rm, "cannot remove temporary file");
                }
                return Err(e);
            }
        };
        if let Err(e) = tokio::fs::rename(&temp, &path).await {
            guard.0 = None;
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(self.aborted(key, format!("rename to {}: {e}", path.display())));
        }
        guard.0 = None;
        // The object is in place; an error now means its durability is not confirmed.
        let parent = path.parent().unwrap_or(&self.root);
        sync_dir(parent)
            .await
            .map_err(|e| self.io_error("put", key, parent, &e))?;
        tracing::debug!(target_name = %self.name, key, bytes = written, "object written");
        Ok(written)
    }

    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        let body = futures::stream::once(async move { Ok(data) }).boxed();
        self.put_stream(key, body).await.map(|_| ())
    }

    async fn get(&self, key: &str) -> Result<ByteStream, StoreError> {
        let path = self.path_of("get", key)?;
        let file = open_file(&path)
            .await
            .map_err(|e| self.open_error("get", key, &path, e))?;
        let (target, key) = (self.name.clone(), key.to_owned());
        let stream = ReaderStream::with_capacity(file, CHUNK)
            .map_err(move |e| io::Error::new(e.kind(), format!("target {target}: get {key}: {e}")));
        Ok(stream.boxed())
    }

    async fn get_bytes(&self, key: &str, max_bytes: u64) -> Result<Bytes, StoreError> {
        let path = self.path_of("get", key)?;
        let file = open_file(&path)
            .await
            .map_err(|e| self.open_error("get", key, &path, e))?;
        let len = file
            .metadata()
            .await
            .map_err(|e| self.io_error("get", key, &path, &e))?
            .len();
        if len > max_bytes {
            return Err(self.backend(
                "get",
                key,
                format!("object is {len} bytes, over the limit of {max_bytes}"),
            ));
        }
        // The file may grow meanwhile: never read more than the limit plus one byte.
        let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut data)
            .await
            .map_err(|e| self.io_error("get", key, &path, &e))?;
        if data.len() as u64 > max_bytes {
            return Err(self.backend(
                "get",
                key,
                format!("object is over the limit of {max_bytes} bytes"),
            ));
        }
        Ok(Bytes::from(data))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.walk_prefix(prefix, false).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of("delete", key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io_error("delete", key, &path, &e)),
        }
        self.prune_empty_dirs(&path).await;
        tracing::debug!(target_name = %self.name, key, "object deleted");
        Ok(())
    }

    async fn cleanup_incomplete(&self, key_prefix: &str) -> Result<usize, StoreError> {
        let partials = self.walk_prefix(key_prefix, true).await?;
        for p in &partials {
            let path = p
                .key
                .split('/')
                .fold(self.root.clone(), |acc, s| acc.join(s));
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {
                    tracing::info!(target_name = %self.name, path = %path.display(), "temporary file of an interrupted write removed")
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io_error("cleanup", &p.key, &path, &e)),
            }
        }
        Ok(partials.len())
    }
}

impl FsStore {
    /// Sorted objects (or, with `partials`, temporary files) under `prefix`.
    async fn walk_prefix(
        &self,
        prefix: &str,
        partials: bool,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        // Start the walk at the deepest directory named by the prefix, when it is a valid one.
        let (start, start_key) = match prefix.rfind('/') {
            Some(i) if check_key(&prefix[..i]).is_ok() => {
                let dir = &prefix[..i];
                let path = dir.split('/').fold(self.root.clone(), |p, s| p.join(s));
                (path, format!("{dir}/"))
            }
            _ => (self.root.clone(), String::new()),
        };
        let owned_prefix = prefix.to_owned();
        let walked = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            walk(&start, &start_key, &owned_prefix, partials, &mut out).map(|()| out)
        })
        .await
        .map_err(|e| self.backend("list", prefix, format!("listing task failed: {e}")))?;
        let mut objects = walked.map_err(|e| self.backend("list", prefix, e.to_string()))?;
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    fn open_error(&self, op: &'static str, key: &str, path: &Path, e: io::Error) -> StoreError {
        if e.kind() == io::ErrorKind::NotFound {
            self.not_found(key)
        } else {
            self.io_error(op, key, path, &e)
        }
    }
}

/// Opens a regular file for reading; a directory counts as missing.
async fn open_file(path: &Path) -> io::Result<tokio::fs::File> {
    let file = tokio::fs::File::open(path).await?;
    if file.metadata().await?.is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "not a regular file",
        ))
    }
}

/// Collects the regular files under `dir` (whose key prefix is `dir_key`) whose key
/// starts with `prefix`: the objects, or with `partials` only the temporary files of
/// interrupted writes. Skips symbolic links and non-UTF-8 names. A missing
/// directory is empty.
fn walk(
    dir: &Path,
    dir_key: &str,
    prefix: &str,
    partials: bool,
    out: &mut Vec<ObjectMeta>,
) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            tracing::warn!(path = %entry.path().display(), "skipping a file whose name is not UTF-8");
            continue;
        };
        let key = format!("{dir_key}{name}");
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            let sub = format!("{key}/");
            // Descend only where keys matching the prefix can be.
            if sub.starts_with(prefix) || prefix.starts_with(&sub) {
                walk(&entry.path(), &sub, prefix, partials, out)?;
            }
        } else if file_type.is_file()
            && name.contains(PARTIAL_MARKER) == partials
            && key.starts_with(prefix)
        {
            match entry.metadata() {
                Ok(meta) => out.push(ObjectMeta {
                    key,
                    size: meta.len(),
                }),
                // Deleted while listing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}
