//! The layer writer, the inverse of [`crate::image::unpack`]: a container's changes become
//! an OCI layer tar stream, compressed and hashed in one pass into the blob store.
//!
//! Two sources, one output format:
//! - **an overlay upper directory** ([`pack_upper`]), as native overlay (mounted with
//!   `userxattr`) or fuse-overlayfs leave it. Deletions are 0/0 character devices (both
//!   drivers; fuse-overlayfs 1.10 makes them in a user namespace too) or empty `.wh.NAME`
//!   files (fuse-overlayfs where it may not mknod). Opaque directories carry
//!   `user.overlay.opaque=y` (native) or, from fuse-overlayfs, `trusted.overlay.opaque=y`
//!   (as real root) or `user.fuseoverlayfs.opaque=y` (rootless) beside a `.wh..wh..opq`
//!   file it always creates; rootless it also leaves a whiteout device named `.wh..opq`
//!   there, which is its bookkeeping and is skipped. All of them become `.wh.NAME` and
//!   `DIR/.wh..wh..opq` entries; overlay's and fuse-overlayfs's own xattrs (`user.overlay.*`,
//!   `trusted.overlay.*`, `user.fuseoverlayfs.*`) never reach the layer.
//! - **a vfs rootfs** ([`pack_diff`]): no upper directory exists, so the rootfs is compared
//!   with the merged view of the image's layers (overlay format, top-most first), as
//!   Docker's naive diff driver does: added and changed entries are written, entries gone
//!   from the rootfs become whiteouts, and every directory holding a change is written too
//!   (with its current owner and mode, which the layer then sets).
//!
//! The stream is what Docker writes: entries in tree order with each directory's entries
//! sorted by name (whiteouts first, after an opaque marker, as the image spec recommends),
//! names relative without `./`, directories ending in `/`, the layer root left out,
//! ustar headers with PAX records for long names and xattrs, mtimes in whole seconds, no
//! user or group names, hard links within the layer as tar hard links to the first name
//! written. Owners are the ids the caller sees (run it in the user namespace to get the
//! container's ids, as Docker's tars have). The same tree gives the same bytes.
//!
//! For the engine (`commit`, `build`): pack inside the container's user namespace
//! (`runtime::in_userns`; [`PackedLayer`] crosses back as JSON), with
//! [`RUNTIME_PATHS`] excluded; the upper dir is `containers/ID/upper`, or for vfs the
//! rootfs with the image's layer dirs (`storage.layer_dir`, top-most first). Then append
//! `diff_id` to the config's `rootfs.diff_ids` and the layer to the manifest. `export` is
//! [`write_diff_tar`] with no lower layers: the whole tree.
//!
//! Sockets are left out (tar cannot hold them; Docker skips them too); devices other than
//! whiteouts are written (unpacking skips them). Xattrs are carried where unpacking would
//! apply them (`user.*` and `security.capability`; see `safefs::xattr_policy`), on files and
//! directories; a version 3 file capability is written as version 2, as Docker does, since
//! its root id means nothing outside this user namespace.

#![allow(dead_code)] // until the engine calls it (commit, build and push land)

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::image::Compression;
use crate::image::blobs::{BlobError, BlobStore, BlobWriter};
use crate::image::tarwrite::{self, HashWriter};

mod diff;
mod emit;
mod upper;

#[cfg(test)]
mod tests;

/// OCI layer media types for what [`pack_upper`] and [`pack_diff`] write.
pub fn layer_media_type(compression: Compression) -> &'static str {
    match compression {
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

/// Paths the runtime creates in a container's root as mount points (`/proc`, `/dev`, ...)
/// or bind targets (the engine's /etc files). Docker keeps them in an init layer below the
/// container's, so they never show in `commit` or `diff`; pass these as
/// [`PackOptions::exclude`] for the same result.
pub const RUNTIME_PATHS: &[&str] = &[
    "/dev",
    "/proc",
    "/sys",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
];

#[derive(Debug, Clone)]
pub struct PackOptions {
    pub compression: Compression,
    /// Container paths (absolute, e.g. `/etc/hosts`) left out of the layer with everything
    /// below them, whiteouts included.
    pub exclude: Vec<String>,
    /// vfs only: compare the contents of regular files whose size and mtime are unchanged
    /// (else such files count as unchanged, as Docker's naive diff has it). Costs a read of
    /// both copies of every such file.
    pub compare_contents: bool,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            compression: Compression::Gzip,
            exclude: Vec::new(),
            compare_contents: true,
        }
    }
}

/// A layer blob written into the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedLayer {
    /// `sha256:` of the blob as stored (compressed): its name in the blob store.
    pub digest: String,
    /// `sha256:` of the uncompressed tar stream, for the image config's `rootfs.diff_ids`.
    pub diff_id: String,
    /// Bytes of the stored blob.
    pub size: u64,
    /// Bytes of the uncompressed tar stream.
    pub tar_size: u64,
    pub media_type: String,
    pub compression: Compression,
    /// Entries in the tar, whiteouts included (0: the container changed nothing).
    pub entries: u64,
}

/// What [`write_upper_tar`] and [`write_diff_tar`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TarStats {
    pub entries: u64,
    /// Bytes of regular-file content (hard links counted once).
    pub content_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("cannot open {} to pack a layer from it", path.display())]
    OpenRoot {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot {op} {} while packing a layer{}", .path.display(), access_hint(.source))]
    Fs {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} changed while it was packed (stop or pause the container and try again)", path.display())]
    Changed { path: PathBuf },
    #[error("cannot write the layer stream")]
    Write {
        #[source]
        source: io::Error,
    },
    #[error("cannot store the packed layer")]
    Store {
        #[source]
        source: BlobError,
    },
}

/// What to do about a permission error: files of a container belong to ids of the user's
/// subordinate range, readable only from inside its user namespace.
fn access_hint(source: &io::Error) -> &'static str {
    match source.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => {
            " (run it inside the container's user namespace, where its files are readable)"
        }
        _ => "",
    }
}

/// Packs an overlay upper directory (native overlay or fuse-overlayfs) into a layer blob.
pub fn pack_upper(
    upper: &Path,
    blobs: &BlobStore,
    opts: &PackOptions,
) -> Result<PackedLayer, PackError> {
    let _span = tracing::debug_span!("pack_upper", path = ?upper).entered();
    pack_with(blobs, opts.compression, |out| {
        write_upper_tar(upper, out, opts)
    })
}

/// Packs the difference between a vfs rootfs and its image's layers (unpacked layer
/// directories, top-most first) into a layer blob.
pub fn pack_diff(
    rootfs: &Path,
    lowers_top_first: &[PathBuf],
    blobs: &BlobStore,
    opts: &PackOptions,
) -> Result<PackedLayer, PackError> {
    let _span = tracing::debug_span!("pack_diff", path = ?rootfs).entered();
    pack_with(blobs, opts.compression, |out| {
        write_diff_tar(rootfs, lowers_top_first, out, opts)
    })
}

/// Writes the uncompressed layer tar of an upper directory to `out`.
pub fn write_upper_tar(
    upper: &Path,
    out: &mut dyn Write,
    opts: &PackOptions,
) -> Result<TarStats, PackError> {
    let mut packer = emit::Packer::new(upper, out, &opts.exclude);
    upper::walk(&mut packer)?;
    packer.finish()
}

/// Writes the uncompressed layer tar of a vfs rootfs's changes to `out`.
pub fn write_diff_tar(
    rootfs: &Path,
    lowers_top_first: &[PathBuf],
    out: &mut dyn Write,
    opts: &PackOptions,
) -> Result<TarStats, PackError> {
    let mut packer = emit::Packer::new(rootfs, out, &opts.exclude);
    diff::walk(&mut packer, lowers_top_first, opts.compare_contents)?;
    packer.finish()
}

/// The compressor between the tar stream and the blob file.
enum Encoder {
    Plain(BufWriter<BlobWriter>),
    Gzip(flate2::write::GzEncoder<BufWriter<BlobWriter>>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<BlobWriter>>),
}

/// Buffer between the compressor and the blob file.
const FILE_BUFFER: usize = 256 * 1024;
/// zstd's default level, as `zstd` and containerd use.
const ZSTD_LEVEL: i32 = 3;

impl Encoder {
    fn new(compression: Compression, blob: BlobWriter) -> io::Result<Encoder> {
        let file = BufWriter::with_capacity(FILE_BUFFER, blob);
        Ok(match compression {
            Compression::None => Encoder::Plain(file),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::default(),
            )),
            Compression::Zstd => {
                Encoder::Zstd(zstd::stream::write::Encoder::new(file, ZSTD_LEVEL)?)
            }
        })
    }

    fn finish(self) -> io::Result<BlobWriter> {
        let file = match self {
            Encoder::Plain(f) => f,
            Encoder::Gzip(g) => g.finish()?,
            Encoder::Zstd(z) => z.finish()?,
        };
        file.into_inner().map_err(|e| e.into_error())
    }
}

impl Write for Encoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(w) => w.write(buf),
            Encoder::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::Zstd(w) => w.flush(),
        }
    }
}

/// Runs `write_tar` into tar hash → compressor → blob file, then names the blob by its
/// digest. On any error the temporary blob file is removed (the writer is dropped).
fn pack_with(
    blobs: &BlobStore,
    compression: Compression,
    write_tar: impl FnOnce(&mut dyn Write) -> Result<TarStats, PackError>,
) -> Result<PackedLayer, PackError> {
    let blob = blobs
        .writer()
        .map_err(|source| PackError::Store { source })?;
    let encoder = Encoder::new(compression, blob).map_err(|source| PackError::Write { source })?;
    let mut tar = HashWriter::new(encoder);
    let stats = write_tar(&mut tar)?;
    let (diff_id, tar_size, encoder) = tar.finish();
    let blob = encoder
        .finish()
        .map_err(|source| PackError::Write { source })?;
    let committed = blob
        .commit(None)
        .map_err(|source| PackError::Store { source })?;
    tracing::debug!(digest = %committed.digest, %diff_id, entries = stats.entries, "packed layer");
    Ok(PackedLayer {
        digest: committed.digest,
        diff_id,
        size: committed.size,
        tar_size,
        media_type: layer_media_type(compression).to_owned(),
        compression,
        entries: stats.entries,
    })
}

/// Writes the end-of-archive marker (used by `Packer::finish`).
fn write_end(out: &mut dyn Write) -> Result<(), PackError> {
    tarwrite::write_end(out).map_err(|source| PackError::Write { source })
}
