//! The content store: blobs (manifests, configs, layers) kept by digest at
//! `<root>/sha256/<hex>`. A blob only ever appears under its name after its bytes were hashed
//! and found to match, so a present file is a verified file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

const ALGORITHM: &str = "sha256";
const TEMP_PREFIX: &str = ".tmp-";

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid digest {digest:?}: expected sha256: followed by 64 lowercase hex digits")]
    InvalidDigest { digest: String },
    #[error("blob {digest} is not in the store ({path})")]
    NotFound { digest: String, path: PathBuf },
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the data of blob {digest}")]
    Read {
        digest: String,
        #[source]
        source: io::Error,
    },
    #[error("blob data does not match its digest: expected {expected}, got {actual}")]
    Mismatch { expected: String, actual: String },
    #[error(
        "blob {digest} at {path} is corrupt: its content hashes to {actual} (remove the image and pull it again)"
    )]
    Corrupt {
        digest: String,
        path: PathBuf,
        actual: String,
    },
}

impl BlobError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> BlobError {
        BlobError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Returns the hex part of a valid `sha256:<64 lowercase hex>` digest. Anything else is
/// refused, so a digest taken from a manifest can never turn into a path like `../../x`.
pub fn digest_hex(digest: &str) -> Result<&str, BlobError> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(hex)
        }
        _ => Err(BlobError::InvalidDigest {
            digest: digest.to_string(),
        }),
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("{ALGORITHM}:{}", hex::encode(Sha256::digest(data)))
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    pub fn new(root: impl Into<PathBuf>) -> BlobStore {
        BlobStore { root: root.into() }
    }

    #[cfg(test)]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self) -> PathBuf {
        self.root.join(ALGORITHM)
    }

    /// Where the blob lives (or would live). An invalid digest maps to a path that cannot
    /// exist inside the store, so callers that only look can never escape it; operations
    /// that create or read report [`BlobError::InvalidDigest`] instead.
    pub fn path(&self, digest: &str) -> PathBuf {
        match digest_hex(digest) {
            Ok(hex) => self.dir().join(hex),
            Err(_) => self.dir().join(".invalid-digest"),
        }
    }

    fn checked_path(&self, digest: &str) -> Result<PathBuf, BlobError> {
        Ok(self.dir().join(digest_hex(digest)?))
    }

    pub fn has(&self, digest: &str) -> bool {
        self.checked_path(digest).is_ok_and(|p| p.is_file())
    }

    /// Opens a blob for streaming (layers). The content was verified when written.
    pub fn open(&self, digest: &str) -> Result<File, BlobError> {
        let path = self.checked_path(digest)?;
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BlobError::NotFound {
                digest: digest.to_string(),
                path: path.clone(),
            },
            _ => BlobError::io("open", &path, e),
        })
    }

    /// Reads a whole blob and checks it still matches its digest (meant for manifests and
    /// configs; stream layers with [`BlobStore::open`]).
    pub fn read(&self, digest: &str) -> Result<Vec<u8>, BlobError> {
        let mut file = self.open(digest)?;
        let path = self.path(digest);
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(|e| BlobError::io("read", &path, e))?;
        let actual = sha256_digest(&data);
        if actual != digest {
            return Err(BlobError::Corrupt {
                digest: digest.to_string(),
                path,
                actual,
            });
        }
        Ok(data)
    }

    /// Streams `data` into the store under `expected_digest`, hashing as it goes. The bytes go
    /// to a temporary file beside the final one, which is synced and renamed into place only
    /// when the hash matches; on any failure nothing is left behind. Returns the size.
    pub fn write(&self, expected_digest: &str, mut data: impl Read) -> Result<u64, BlobError> {
        let final_path = self.checked_path(expected_digest)?;
        let dir = self.dir();
        fs::create_dir_all(&dir).map_err(|e| BlobError::io("create directory", &dir, e))?;
        let temp = TempFile::create(&dir, digest_hex(expected_digest)?)?;
        let mut file = &temp.file;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(BlobError::Read {
                        digest: expected_digest.to_string(),
                        source,
                    });
                }
            };
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])
                .map_err(|e| BlobError::io("write", &temp.path, e))?;
            size += n as u64;
        }
        let actual = format!("{ALGORITHM}:{}", hex::encode(hasher.finalize()));
        if actual != expected_digest {
            return Err(BlobError::Mismatch {
                expected: expected_digest.to_string(),
                actual,
            });
        }
        file.sync_all()
            .map_err(|e| BlobError::io("sync", &temp.path, e))?;
        temp.persist(&final_path)?;
        // The rename is durable only once the directory entry is on disk.
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| BlobError::io("sync directory", &dir, e))?;
        Ok(size)
    }

    /// Stores bytes and returns their digest.
    #[cfg(test)]
    pub fn put_bytes(&self, data: &[u8]) -> Result<String, BlobError> {
        let digest = sha256_digest(data);
        self.write(&digest, data)?;
        Ok(digest)
    }

    /// Removes a blob; removing one that is not there is not an error.
    pub fn remove(&self, digest: &str) -> Result<(), BlobError> {
        let path = self.checked_path(digest)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BlobError::io("remove", &path, e)),
        }
    }

    /// Digests of every blob in the store (for garbage collection), sorted.
    pub fn list(&self) -> Result<Vec<String>, BlobError> {
        let dir = self.dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(BlobError::io("list", &dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| BlobError::io("list", &dir, e))?;
            if let Some(name) = entry.file_name().to_str() {
                let digest = format!("{ALGORITHM}:{name}");
                if digest_hex(&digest).is_ok() {
                    out.push(digest);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes temporary files that a killed writer left behind. Call it only when no pull
    /// can be running (for example under the store's lock).
    #[cfg(test)]
    pub fn clean_temp_files(&self) -> Result<usize, BlobError> {
        let dir = self.dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(BlobError::io("list", &dir, e)),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|e| BlobError::io("list", &dir, e))?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let path = entry.path();
                fs::remove_file(&path).map_err(|e| BlobError::io("remove", &path, e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A temporary file that is deleted on drop unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    file: File,
    persisted: bool,
}

impl TempFile {
    fn create(dir: &Path, hex: &str) -> Result<TempFile, BlobError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{TEMP_PREFIX}{hex}-{}-{n}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| BlobError::io("create", &path, e))?;
        Ok(TempFile {
            path,
            file,
            persisted: false,
        })
    }

    fn persist(mut self, to: &Path) -> Result<(), BlobError> {
        fs::rename(&self.path, to).map_err(|e| BlobError::io("rename into place", to, e))?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted
            && let Err(err) = fs::remove_file(&self.path)
        {
            tracing::warn!(path = ?self.path, %err, "cannot remove temporary blob file");
        }
    }
}

mod ingest;
pub use ingest::BlobWriter;

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path().join("blobs"));
        (dir, store)
    }

    fn dir_entries(store: &BlobStore) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(store.root().join("sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn digest_of_known_bytes() {
        assert_eq!(
            sha256_digest(b"hello"),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }

    #[test]
    fn put_read_has_remove() {
        let (_d, store) = store();
        let digest = store.put_bytes(b"hello").unwrap();
        assert!(store.has(&digest));
        assert_eq!(store.read(&digest).unwrap(), b"hello");
        assert_eq!(
            store.path(&digest),
            store.root().join("sha256").join(&digest[7..])
        );
        assert_eq!(store.list().unwrap(), vec![digest.clone()]);
        store.remove(&digest).unwrap();
        assert!(!store.has(&digest));
        store.remove(&digest).unwrap();
        assert!(matches!(
            store.read(&digest),
            Err(BlobError::NotFound { .. })
        ));
    }

    #[test]
    fn write_streams_and_returns_size() {
        let (_d, store) = store();
        let data = vec![7u8; 300_000];
        let digest = sha256_digest(&data);
        let n = store.write(&digest, &data[..]).unwrap();
        assert_eq!(n, 300_000);
        assert_eq!(store.read(&digest).unwrap(), data);
        assert_eq!(dir_entries(&store), vec![digest[7..].to_string()]);
    }

    #[test]
    fn mismatch_leaves_nothing() {
        let (_d, store) = store();
        let wrong = sha256_digest(b"something else");
        let err = store.write(&wrong, &b"hello"[..]).unwrap_err();
        match err {
            BlobError::Mismatch { expected, actual } => {
                assert_eq!(expected, wrong);
                assert_eq!(actual, sha256_digest(b"hello"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!store.has(&wrong));
        assert!(dir_entries(&store).is_empty());
    }

    struct FailingReader(usize);
    impl Read for FailingReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
            }
            let n = self.0.min(buf.len());
            buf[..n].fill(1);
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn reader_failure_leaves_nothing() {
        let (_d, store) = store();
        let digest = sha256_digest(b"x");
        let err = store.write(&digest, FailingReader(100_000)).unwrap_err();
        assert!(matches!(err, BlobError::Read { .. }), "{err:?}");
        assert!(!store.has(&digest));
        assert!(dir_entries(&store).is_empty());
    }

    #[test]
    fn hostile_digests_never_become_paths() {
        let (_d, store) = store();
        for bad in [
            "sha256:../../../../etc/passwd",
            "../../x",
            "sha256:",
            "sha512:abcd",
            "sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982/",
        ] {
            assert!(matches!(
                store.write(bad, &b"x"[..]),
                Err(BlobError::InvalidDigest { .. })
            ));
            assert!(matches!(
                store.read(bad),
                Err(BlobError::InvalidDigest { .. })
            ));
            assert!(matches!(
                store.remove(bad),
                Err(BlobError::InvalidDigest { .. })
            ));
            assert!(!store.has(bad));
            assert!(store.path(bad).starts_with(store.root().join("sha256")));
            assert!(!store.path(bad).to_string_lossy().contains(".."));
        }
    }

    #[test]
    fn read_detects_corruption() {
        let (_d, store) = store();
        let digest = store.put_bytes(b"hello").unwrap();
        fs::write(store.path(&digest), b"jello").unwrap();
        assert!(matches!(
            store.read(&digest),
            Err(BlobError::Corrupt { .. })
        ));
    }

    #[test]
    fn clean_temp_files_removes_only_temporaries() {
        let (_d, store) = store();
        let digest = store.put_bytes(b"hello").unwrap();
        fs::write(store.root().join("sha256/.tmp-abc-1-0"), b"partial").unwrap();
        assert_eq!(store.list().unwrap(), vec![digest.clone()]);
        assert_eq!(store.clean_temp_files().unwrap(), 1);
        assert_eq!(dir_entries(&store), vec![digest[7..].to_string()]);
    }

    #[test]
    fn concurrent_writers_of_the_same_blob() {
        let (_d, store) = store();
        let data = vec![3u8; 200_000];
        let digest = sha256_digest(&data);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| store.write(&digest, &data[..]).unwrap());
            }
        });
        assert_eq!(store.read(&digest).unwrap(), data);
        assert_eq!(dir_entries(&store), vec![digest[7..].to_string()]);
    }
}
