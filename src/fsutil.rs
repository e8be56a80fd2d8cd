//! Replacing a file whole: the one way burrow rewrites a file that others may read at any
//! moment (records, credentials, compiled plugins, a terminal size for the monitor).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// How [`write_atomic`] writes.
#[derive(Debug, Clone, Copy)]
pub struct Atomic {
    /// fsync the file before the rename: the new content survives a crash once this returns.
    pub sync: bool,
    /// The file's mode (before the umask).
    pub mode: u32,
}

impl Atomic {
    /// Synced, 0644: state that must survive a crash.
    pub const DURABLE: Atomic = Atomic {
        sync: true,
        mode: 0o644,
    };
    /// Not synced: files that are worthless after a crash anyway (a container's runtime
    /// files), which must not cost a disk flush each.
    pub const UNSYNCED: Atomic = Atomic {
        sync: false,
        mode: 0o644,
    };
    /// Synced and private (0600): credentials, compiled code.
    pub const PRIVATE: Atomic = Atomic {
        sync: true,
        mode: 0o600,
    };
}

/// The step of [`write_atomic`] that failed, and on which path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {step} {}", path.display())]
pub struct AtomicError {
    pub step: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Writes `data` to a new temp file beside `path` and renames it over `path`: a reader sees
/// the old content or the new, never a part, and concurrent writers (threads or
/// processes) never share a temp file. The temp file goes if anything fails.
pub fn write_atomic(path: &Path, data: &[u8], how: Atomic) -> Result<(), AtomicError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let fail = |step, path: &Path| {
        let path = path.to_path_buf();
        move |source| AtomicError { step, path, source }
    };
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(how.mode)
            .open(&tmp)
            .map_err(fail("create", &tmp))?;
        f.write_all(data).map_err(fail("write", &tmp))?;
        if how.sync {
            f.sync_all().map_err(fail("sync", &tmp))?;
        }
        std::fs::rename(&tmp, path).map_err(fail("replace", path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_with_the_mode_asked_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        write_atomic(&path, b"one", Atomic::DURABLE).unwrap();
        write_atomic(&path, b"two", Atomic::PRIVATE).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f.json"]);
        // A directory in the way: the write fails, naming the step, and cleans up.
        let err = write_atomic(dir.path(), b"x", Atomic::UNSYNCED).unwrap_err();
        assert_eq!(err.step, "replace");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn concurrent_writers_never_share_a_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared");
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(path, &[i; 64], Atomic::UNSYNCED).unwrap();
                    }
                });
            }
        });
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data.len(), 64);
        assert!(data.iter().all(|b| *b == data[0]), "a torn write");
    }
}
