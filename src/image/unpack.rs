//! Layer unpacking: a layer blob (tar, plain or gzip or zstd) becomes a directory in overlay
//! format, the one format every storage driver reads.
//!
//! The tar stream is hostile input. Names are normalised and may not climb above the layer
//! root; parents are opened one component at a time without following symlinks (a layer with
//! `lib -> /usr/lib` then `lib/x` is refused); hard links must point at something this layer
//! already extracted. The `tar` crate only parses; every write is done here, relative to
//! directory descriptors (see `storage::safefs`).
//!
//! Whiteouts become overlay whiteouts: `.wh.NAME` is a 0/0 character device at NAME and
//! `.wh..wh..opq` marks its directory with `user.overlay.opaque=y` (overlay is mounted with
//! `userxattr` in the user namespace).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
use nix::sys::time::TimeSpec;
use nix::unistd::{fsync, syncfs};
use sha2::{Digest, Sha256};

use crate::image::Compression;
use crate::storage::safefs;

use writer::Unpacker;

/// Longest entry name accepted, in bytes (PATH_MAX).
pub const MAX_ENTRY_PATH: usize = 4096;

#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Only one id is mapped in the user namespace: keep files owned by root-in-namespace
    /// when the layer names another owner.
    pub ignore_chown_errors: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    /// `sha256:<hex>` of the uncompressed tar stream, to compare with the config's diff_ids.
    pub diff_id: String,
    /// Bytes of regular file content written (hard links counted once).
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot unpack layer {layer} into {}: it already exists (remove it first)", dest.display())]
    DestExists { layer: String, dest: PathBuf },
    #[error("cannot open layer blob {}", blob.display())]
    OpenBlob {
        blob: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: cannot create a temporary directory beside {}", dest.display())]
    TempDir {
        layer: String,
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: cannot read the tar stream of {} (corrupt or truncated blob: remove it and pull again)", blob.display())]
    ReadStream {
        layer: String,
        blob: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "layer {layer}: cannot read the contents of entry \"{entry}\" (truncated or corrupt blob: remove it and pull again)"
    )]
    EntryData {
        layer: String,
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: entry \"{entry}\" has a corrupt header")]
    BadHeader {
        layer: String,
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "layer {layer}: entry name is {len} bytes, over the {MAX_ENTRY_PATH}-byte limit (starts \"{prefix}\")"
    )]
    PathTooLong {
        layer: String,
        prefix: String,
        len: usize,
    },
    #[error("layer {layer}: entry \"{entry}\" escapes the layer root")]
    Escape { layer: String, entry: String },
    #[error(
        "layer {layer}: entry \"{entry}\" goes through \"{parent}\", a symlink inside the layer; refusing a hostile layer"
    )]
    SymlinkParent {
        layer: String,
        entry: String,
        parent: String,
    },
    #[error("layer {layer}: entry \"{entry}\" goes through \"{parent}\", which is not a directory")]
    NotADirectory {
        layer: String,
        entry: String,
        parent: String,
    },
    #[error("layer {layer}: hard link \"{entry}\" points at \"{target}\", outside the layer root")]
    LinkEscape {
        layer: String,
        entry: String,
        target: String,
    },
    #[error(
        "layer {layer}: hard link \"{entry}\" points at \"{target}\", which is not a file this layer extracted before it"
    )]
    LinkTarget {
        layer: String,
        entry: String,
        target: String,
    },
    #[error("layer {layer}: link \"{entry}\" has no target name")]
    MissingLinkName { layer: String, entry: String },
    #[error("layer {layer}: whiteout \"{entry}\" names nothing")]
    BadWhiteout { layer: String, entry: String },
    #[error("layer {layer}: cannot {op} \"{entry}\" in {}", dir.display())]
    Fs {
        layer: String,
        entry: String,
        op: &'static str,
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "layer {layer}: cannot give \"{entry}\" the owner {uid}:{gid} (is that id mapped in the user namespace? add ranges to /etc/subuid and /etc/subgid, or set ignore_chown_errors to keep such files owned by root)"
    )]
    Chown {
        layer: String,
        entry: String,
        uid: u64,
        gid: u64,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: cannot set xattr {name} on \"{entry}\" (does the filesystem under {} support user xattrs?)", dir.display())]
    Xattr {
        layer: String,
        entry: String,
        name: String,
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: cannot move the unpacked layer into place at {}", dest.display())]
    Commit {
        layer: String,
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Unpacks the layer `blob` into `dest` (which must not exist) in overlay format. Runs in
/// the user namespace, where the layer's owners are mapped.
///
/// The layer is written into a temporary sibling, synced and renamed into place; on any error
/// the temporary directory is removed and nothing is left behind. The whole tar stream is
/// read, so `diff_id` covers it even past the end-of-archive marker.
pub fn unpack_layer(
    blob: &Path,
    compression: Compression,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let layer = layer_label(blob);
    if dest.symlink_metadata().is_ok() {
        return Err(UnpackError::DestExists {
            layer,
            dest: dest.to_owned(),
        });
    }
    let file = File::open(blob).map_err(|source| UnpackError::OpenBlob {
        blob: blob.to_owned(),
        source,
    })?;
    let tmp = make_temp_dir(dest).map_err(|source| UnpackError::TempDir {
        layer: layer.clone(),
        dest: dest.to_owned(),
        source,
    })?;
    let result = unpack_into(&layer, blob, file, compression, &tmp, dest, opts);
    if result.is_err()
        && let Err(err) = safefs::remove_tree(&tmp)
    {
        tracing::warn!(path = ?tmp, %err, "cannot remove a partly unpacked layer");
    }
    result
}

fn unpack_into(
    layer: &str,
    blob: &Path,
    file: File,
    compression: Compression,
    tmp: &Path,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let read_err = |source| UnpackError::ReadStream {
        layer: layer.to_owned(),
        blob: blob.to_owned(),
        source,
    };
    let reader: Box<dyn Read> = match compression {
        Compression::None => Box::new(BufReader::new(file)),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(file).map_err(read_err)?),
    };
    let mut stream = HashingReader {
        inner: reader,
        hasher: Sha256::new(),
    };
    let root = safefs::open_dir(tmp).map_err(|e| UnpackError::TempDir {
        layer: layer.to_owned(),
        dest: dest.to_owned(),
        source: e.into(),
    })?;
    let mut unpacker = Unpacker::new(layer, tmp, root, opts);
    {
        let mut archive = tar::Archive::new(&mut stream);
        for entry in archive.entries().map_err(read_err)? {
            unpacker.entry(&mut entry.map_err(read_err)?)?;
        }
    }
    // Tar writers pad to a record size after the end marker; the digest covers that too.
    io::copy(&mut stream, &mut io::sink()).map_err(read_err)?;
    unpacker.finish()?;

    let commit_err = |e: Errno| UnpackError::Commit {
        layer: layer.to_owned(),
        dest: dest.to_owned(),
        source: e.into(),
    };
    syncfs(unpacker.root()).map_err(commit_err)?;
    renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RenameFlags::RENAME_NOREPLACE).map_err(commit_err)?;
    let parent = parent_of(dest);
    safefs::open_dir(parent)
        .and_then(fsync)
        .map_err(commit_err)?;

    Ok(UnpackStats {
        diff_id: format!("sha256:{}", hex::encode(stream.hasher.finalize())),
        size: unpacker.size(),
    })
}

/// `sha256:<hex>` when the blob sits in a content store (`.../sha256/<hex>`), else its path.
fn layer_label(blob: &Path) -> String {
    let name = blob.file_name().and_then(OsStr::to_str);
    let alg = blob
        .parent()
        .and_then(Path::file_name)
        .and_then(OsStr::to_str);
    match (alg, name) {
        (Some(alg @ ("sha256" | "sha512")), Some(hex))
            if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            format!("{alg}:{hex}")
        }
        _ => blob.display().to_string(),
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn make_temp_dir(dest: &Path) -> io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = dest.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the destination has no file name",
        )
    })?;
    let parent = parent_of(dest);
    std::fs::create_dir_all(parent)?;
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = parent.join(format!(
            ".{}.tmp-{}-{n}",
            name.to_string_lossy(),
            std::process::id()
        ));
        match std::fs::DirBuilder::new().mode(0o755).create(&tmp) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            other => return other.map(|()| tmp),
        }
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// What the header (and its PAX records) say about an entry's metadata.
struct Meta {
    uid: u64,
    gid: u64,
    mode: u32,
    mtime: TimeSpec,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Reads an entry's metadata from its header and PAX records.
fn read_meta<R: Read>(
    layer: &str,
    entry: &mut tar::Entry<'_, R>,
    shown: &str,
) -> Result<Meta, UnpackError> {
    let bad = |source| UnpackError::BadHeader {
        layer: layer.to_owned(),
        entry: shown.to_owned(),
        source,
    };
    let h = entry.header();
    let old = h.as_old();
    let mtime = numeric(h.mtime(), &old.mtime).map_err(bad)?;
    let mut meta = Meta {
        uid: numeric(h.uid(), &old.uid).map_err(bad)?,
        gid: numeric(h.gid(), &old.gid).map_err(bad)?,
        mode: numeric(h.mode().map(u64::from), &old.mode).map_err(bad)? as u32 & 0o7777,
        mtime: TimeSpec::new(i64::try_from(mtime).unwrap_or(i64::MAX), 0),
        xattrs: Vec::new(),
    };
    if let Some(exts) = entry.pax_extensions().map_err(bad)? {
        for ext in exts {
            let ext = ext.map_err(bad)?;
            let Ok(key) = ext.key() else { continue };
            let value = ext.value_bytes();
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                meta.xattrs.push((name.to_owned(), value.to_vec()));
                continue;
            }
            let text = std::str::from_utf8(value).unwrap_or("");
            match key {
                "uid" => meta.uid = text.parse().unwrap_or(meta.uid),
                "gid" => meta.gid = text.parse().unwrap_or(meta.gid),
                "mtime" => meta.mtime = parse_pax_time(text).unwrap_or(meta.mtime),
                _ => {}
            }
        }
    }
    Ok(meta)
}

/// A header number; an empty field reads as 0, as Go's archive/tar (Docker) has it.
fn numeric(parsed: io::Result<u64>, field: &[u8]) -> io::Result<u64> {
    match parsed {
        Err(_) if field.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        other => other,
    }
}

/// PAX times are decimal seconds with an optional fraction.
fn parse_pax_time(text: &str) -> Option<TimeSpec> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    if secs >= 0 && !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        nanos = format!("{digits:0<9}").parse().ok()?;
    }
    Some(TimeSpec::new(secs, nanos))
}

#[path = "unpack/writer.rs"]
mod writer;

#[cfg(test)]
#[path = "unpack/tests.rs"]
mod tests;
