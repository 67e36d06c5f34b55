//! One writer per source: an advisory lock file under `state_dir/locks/`, held
//! while a job writes a source's backups, so that two runs never overlap and
//! the leftovers of a killed run (incomplete multipart uploads, temporary
//! files) can be removed safely by the next one.
//!
//! The lock is the operating system's (`flock`): it dies with the process, so a
//! `SIGKILL` never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::store::DynStore;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another coffre job holds the lock {path} of source {source_name} (a backup, prune or heal, or under drills/ another drill): wait for it to end"
    )]
    Busy { source_name: String, path: PathBuf },
    #[error("cannot create or lock {path}: {reason} (check state_dir)")]
    Io { path: PathBuf, reason: String },
}

/// A held source lock; released when dropped.
#[derive(Debug)]
pub struct SourceLock {
    _file: File,
    path: PathBuf,
}

impl SourceLock {
    /// Takes the lock of `source` without waiting.
    pub fn acquire(state_dir: &Path, source: &str) -> Result<SourceLock, LockError> {
        let dir = state_dir.join("locks");
        let path = dir.join(format!("{source}.lock"));
        let io = |e: std::io::Error| LockError::Io {
            path: path.clone(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(SourceLock { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(LockError::Busy {
                source_name: source.to_owned(),
                path,
            }),
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Removes what killed runs left under `source/` in each store (aborts
/// incomplete multipart uploads, deletes temporary files). Call it holding the
/// source's lock. A store that cannot be cleaned is logged, not fatal: its
/// upload will report the real problem.
pub async fn clean_leftovers(stores: &[DynStore], source: &str) {
    let prefix = format!("{source}/");
    for store in stores {
        match store.cleanup_incomplete(&prefix).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(target_name = %store.name(), leftovers = n, "leftovers of an interrupted backup removed")
            }
            Err(e) => {
                tracing::warn!(target_name = %store.name(), error = %e, "cannot clean leftovers of interrupted backups")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = SourceLock::acquire(dir.path(), "billing").expect("first");
        let err = SourceLock::acquire(dir.path(), "billing").expect_err("busy");
        assert!(matches!(err, LockError::Busy { .. }), "{err}");
        assert!(err.to_string().contains("billing"), "{err}");
        // Other sources are independent.
        let _other = SourceLock::acquire(dir.path(), "crm").expect("other source");
        drop(first);
        SourceLock::acquire(dir.path(), "billing").expect("free again");
    }
}
