//! Blobs whose digest is known only once the last byte is written (layers being packed,
//! archive entries named by something other than their digest).

#![allow(dead_code)] // until the engine calls it (the layer writer and archives land)

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{ALGORITHM, BlobError, BlobStore, TempFile};

/// A blob being written: bytes go to a temporary file in the store and are hashed on the
/// way. [`BlobWriter::commit`] names the file by its digest; dropping the writer without
/// committing removes the temporary file, so a failed write leaves nothing behind.
pub struct BlobWriter {
    temp: TempFile,
    hasher: Sha256,
    size: u64,
    store: BlobStore,
}

/// A blob [`BlobWriter::commit`] put in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub digest: String,
    pub size: u64,
    /// The store held this blob already (its bytes were identical, being hashed to it).
    pub existed: bool,
}

impl BlobStore {
    /// Starts a blob whose digest is not known yet.
    pub fn writer(&self) -> Result<BlobWriter, BlobError> {
        let dir = self.dir();
        std::fs::create_dir_all(&dir).map_err(|e| BlobError::io("create directory", &dir, e))?;
        Ok(BlobWriter {
            temp: TempFile::create(&dir, "ingest")?,
            hasher: Sha256::new(),
            size: 0,
            store: self.clone(),
        })
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Syncs the bytes and renames them into place under their digest. When `expected` is
    /// given and differs, nothing is stored and [`BlobError::Mismatch`] is returned.
    pub fn commit(self, expected: Option<&str>) -> Result<Committed, BlobError> {
        let BlobWriter {
            temp,
            hasher,
            size,
            store,
        } = self;
        let digest = format!("{ALGORITHM}:{}", hex::encode(hasher.finalize()));
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(BlobError::Mismatch {
                expected: expected.to_owned(),
                actual: digest,
            });
        }
        let final_path = store.path(&digest);
        let existed = final_path.is_file();
        temp.file
            .sync_all()
            .map_err(|e| BlobError::io("sync", &temp.path, e))?;
        temp.persist(&final_path)?;
        sync_dir(&store.dir())?;
        Ok(Committed {
            digest,
            size,
            existed,
        })
    }
}

fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BlobError::io("sync directory", dir, e))
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (&self.temp.file).write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&self.temp.file).flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::blobs::sha256_digest;

    fn entries(store: &BlobStore) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(store.root().join("sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writer_names_the_blob_by_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path().join("blobs"));
        let mut w = store.writer().unwrap();
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        assert_eq!(w.size(), 11);
        let c = w.commit(None).unwrap();
        assert_eq!(c.digest, sha256_digest(b"hello world"));
        assert_eq!((c.size, c.existed), (11, false));
        assert_eq!(store.read(&c.digest).unwrap(), b"hello world");

        let mut again = store.writer().unwrap();
        again.write_all(b"hello world").unwrap();
        assert!(again.commit(Some(&c.digest)).unwrap().existed);
        assert_eq!(entries(&store), vec![c.digest[7..].to_string()]);
    }

    #[test]
    fn dropped_or_mismatched_writers_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path().join("blobs"));
        let mut w = store.writer().unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        assert!(entries(&store).is_empty());

        let mut w = store.writer().unwrap();
        w.write_all(b"data").unwrap();
        let wrong = sha256_digest(b"other");
        assert!(matches!(
            w.commit(Some(&wrong)),
            Err(BlobError::Mismatch { .. })
        ));
        assert!(entries(&store).is_empty());
    }
}
