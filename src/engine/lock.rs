//! File locks and atomic writes for state that lives outside the database.

use std::fs::File;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use super::{EngineError, Result};
use crate::fsutil::Atomic;

/// An exclusive lock on a file, held until dropped.
pub struct FileLock {
    _lock: Flock<File>,
}

impl FileLock {
    /// Blocks until the lock on `path` (created if missing) is ours.
    pub fn exclusive(path: &Path) -> Result<FileLock> {
        let file = open_lock_file(path)?;
        let lock =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| EngineError::Io {
                what: "lock",
                path: path.to_path_buf(),
                source: errno.into(),
            })?;
        Ok(FileLock { _lock: lock })
    }

    /// Takes the lock only if nobody holds it.
    pub fn try_exclusive(path: &Path) -> Result<Option<FileLock>> {
        let file = open_lock_file(path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(FileLock { _lock: lock })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(EngineError::Io {
                what: "lock",
                path: path.to_path_buf(),
                source: errno.into(),
            }),
        }
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| EngineError::Io {
            what: "open",
            path: path.to_path_buf(),
            source,
        })
}

/// Writes `data` to a temp file beside `path`, syncs it and renames it over `path`.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    write_replace(path, data, Atomic::DURABLE)
}

/// Like [`write_atomic`] without the fsync: for a container's own files, which a crash
/// makes worthless anyway, and which must not cost a disk flush per container start.
pub fn write_replace_unsynced(path: &Path, data: &[u8]) -> Result<()> {
    write_replace(path, data, Atomic::UNSYNCED)
}

fn write_replace(path: &Path, data: &[u8], how: Atomic) -> Result<()> {
    crate::fsutil::write_atomic(path, data, how).map_err(|e| EngineError::Io {
        what: e.step,
        path: e.path,
        source: e.source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_the_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        let first = FileLock::exclusive(&p).unwrap();
        assert!(FileLock::try_exclusive(&p).unwrap().is_none());
        drop(first);
        assert!(FileLock::try_exclusive(&p).unwrap().is_some());
    }

    #[test]
    fn atomic_write_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
