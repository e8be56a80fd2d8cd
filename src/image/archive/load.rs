//! Reading an archive: the stream is taken entry by entry into the blob store (see the
//! module documentation), then `resolve` makes images of what arrived.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::io::{self, BufReader, Read, Write};
use std::rc::Rc;

use tar::EntryType;

use super::names::{entry_name, hardlink_target, symlink_target};
use super::resolve;
use super::{ArchiveError, LoadOptions, LoadedImage};
use crate::image::Compression;
use crate::image::blobs::{BlobError, BlobStore};
use crate::image::tarwrite::HashWriter;

/// Metadata files (`manifest.json`, `index.json`, a layer's `json`) are read into memory up
/// to this size each...
const MAX_META: u64 = 16 * 1024 * 1024;
/// ...and this much in all.
const MAX_META_TOTAL: u64 = 64 * 1024 * 1024;
/// After the end-of-archive marker, at most this much is read (to let a gzip stream check
/// its trailer); the rest is left unread.
const MAX_TRAILER: u64 = 1024 * 1024;
const CHUNK: usize = 256 * 1024;

/// A file of the archive that went into the blob store.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub digest: String,
    pub size: u64,
    /// What the bytes are compressed with, by their magic.
    pub compression: Compression,
    /// `sha256:` of the decompressed bytes (the digest itself when not compressed); `None`
    /// when they would not decompress.
    pub uncompressed_digest: Option<String>,
}

#[derive(Debug, Clone)]
pub(super) enum Item {
    Meta(Vec<u8>),
    Blob(Stored),
}

/// What the stream held, by normalised entry name.
#[derive(Default)]
pub(super) struct Contents {
    pub items: HashMap<String, Item>,
    /// Symlink entries → the archive name they point to.
    pub links: HashMap<String, String>,
}

/// Loads every image of an archive read from `input` (plain, gzip or zstd). The blobs
/// land in `blobs`; the caller records the returned images. On error, every blob this load
/// added is removed again; on success, so is any file of the archive no image uses.
pub fn load(
    blobs: &BlobStore,
    input: impl Read,
    opts: &LoadOptions,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let _span = tracing::debug_span!("load").entered();
    let mut session = Session {
        blobs,
        added: Vec::new(),
    };
    let result = session
        .ingest(input)
        .and_then(|contents| resolve::images(&mut session, &contents, opts));
    let keep: HashSet<&str> = match &result {
        Ok(images) => images
            .iter()
            .flat_map(|i| {
                [i.manifest_digest.as_str(), i.config_digest.as_str()]
                    .into_iter()
                    .chain(i.layers.iter().map(|l| l.digest.as_str()))
            })
            .collect(),
        Err(_) => HashSet::new(),
    };
    for digest in session.added.iter().filter(|d| !keep.contains(d.as_str())) {
        if let Err(err) = blobs.remove(digest) {
            tracing::warn!(%digest, %err, "cannot remove a blob of an archive");
        }
    }
    result
}

pub(super) struct Session<'a> {
    pub blobs: &'a BlobStore,
    /// Blobs this load put in the store that were not there before.
    pub added: Vec<String>,
}

/// Counts what the tar reader consumed, to tell a finished archive from a cut one, and
/// notes when the input ended (shared, since the tar reader owns this while it iterates).
struct Counting<R> {
    inner: R,
    count: u64,
    ended: Rc<Cell<bool>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ended.set(true);
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// The input, decompressed according to its magic.
fn decompressed<'r>(mut input: impl Read + 'r) -> Result<Box<dyn Read + 'r>, ArchiveError> {
    // A pipe may deliver the magic in pieces: read up to its length before deciding.
    let mut head = [0u8; 4];
    let n = read_some(&mut input, &mut head).map_err(|source| ArchiveError::Read { source })?;
    let buf = BufReader::with_capacity(CHUNK, io::Cursor::new(head[..n].to_vec()).chain(input));
    Ok(match sniff(&head[..n]) {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(buf)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(buf)
                .map_err(|source| ArchiveError::Read { source })?,
        ),
        Compression::None => Box::new(buf),
    })
}

/// gzip and zstd by their magic numbers; anything else is taken as plain.
pub(super) fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

fn read_error(what: impl FnOnce() -> String, source: io::Error) -> ArchiveError {
    if source.kind() == io::ErrorKind::UnexpectedEof {
        ArchiveError::Truncated { what: what() }
    } else {
        ArchiveError::Read { source }
    }
}

/// Metadata files kept in memory; everything else goes to the blob store.
fn is_meta(name: &str) -> bool {
    matches!(
        name,
        "manifest.json" | "index.json" | "oci-layout" | "repositories"
    ) || name
        .split_once('/')
        .is_some_and(|(dir, file)| !dir.is_empty() && matches!(file, "json" | "VERSION"))
}

/// `sha256:<hex>` for an OCI layout's `blobs/sha256/<hex>`.
pub(super) fn layout_digest(name: &str) -> Option<String> {
    let hex = name.strip_prefix("blobs/sha256/")?;
    let digest = format!("sha256:{hex}");
    crate::image::blobs::digest_hex(&digest).ok()?;
    Some(digest)
}

impl Session<'_> {
    fn ingest(&mut self, input: impl Read) -> Result<Contents, ArchiveError> {
        let ended = Rc::new(Cell::new(false));
        let mut archive = tar::Archive::new(Counting {
            inner: decompressed(input)?,
            count: 0,
            ended: ended.clone(),
        });
        let mut contents = Contents::default();
        let mut meta_total = 0u64;
        // Where the last entry's data (padded) ends: the end marker must follow it.
        let mut data_end = 0u64;
        let entries = archive
            .entries()
            .map_err(|source| ArchiveError::Read { source })?;
        for entry in entries {
            let mut entry = entry.map_err(|source| {
                if ended.get() {
                    ArchiveError::Truncated {
                        what: "it ends inside an entry's header".into(),
                    }
                } else {
                    ArchiveError::Read { source }
                }
            })?;
            let size = entry.size();
            data_end = entry.raw_file_position() + size.div_ceil(512) * 512;
            let kind = entry.header().entry_type();
            let Some(name) = entry_name(&entry.path_bytes())? else {
                continue; // the root directory
            };
            if contents.items.contains_key(&name) || contents.links.contains_key(&name) {
                return Err(ArchiveError::Duplicate { entry: name });
            }
            match kind {
                EntryType::Directory | EntryType::XGlobalHeader => {}
                EntryType::Symlink => {
                    let target = entry.link_name_bytes().unwrap_or_default();
                    let target = symlink_target(&name, &target)?;
                    contents.links.insert(name, target);
                }
                EntryType::Link => {
                    let raw = entry.link_name_bytes().unwrap_or_default();
                    let target = hardlink_target(&name, &raw)?;
                    let Some(item) = contents.items.get(&target).cloned() else {
                        return Err(ArchiveError::BadLink {
                            entry: name,
                            target,
                            reason: "which is not a file that comes before it in the archive",
                        });
                    };
                    contents.items.insert(name, item);
                }
                EntryType::Regular | EntryType::Continuous if is_meta(&name) => {
                    meta_total += size;
                    if size > MAX_META || meta_total > MAX_META_TOTAL {
                        return Err(ArchiveError::TooLarge {
                            entry: name,
                            limit: MAX_META,
                        });
                    }
                    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                    (&mut entry)
                        .take(size)
                        .read_to_end(&mut data)
                        .map_err(|e| read_error(|| format!("\"{name}\" is cut"), e))?;
                    if data.len() as u64 != size {
                        return Err(cut(&name, data.len() as u64, size));
                    }
                    contents.items.insert(name, Item::Meta(data));
                }
                EntryType::Regular | EntryType::Continuous => {
                    let stored = self.blob(&name, &mut entry, size)?;
                    contents.items.insert(name, Item::Blob(stored));
                }
                _ => {
                    return Err(ArchiveError::Hostile {
                        entry: name,
                        reason: "is a device, fifo or other special file, which image archives never hold",
                    });
                }
            }
        }
        let mut counting = archive.into_inner();
        if counting.count < data_end + 512 {
            return Err(ArchiveError::Truncated {
                what: "it ends without the end-of-archive marker".into(),
            });
        }
        // Read a little past the marker so a compressed stream checks its trailer.
        io::copy(&mut (&mut counting).take(MAX_TRAILER), &mut io::sink())
            .map_err(|e| read_error(|| "the compressed stream ends early".into(), e))?;
        Ok(contents)
    }

    /// Streams one entry into the blob store, verified against its name when the name is
    /// a digest (`blobs/sha256/<hex>`).
    fn blob(
        &mut self,
        name: &str,
        entry: &mut impl Read,
        size: u64,
    ) -> Result<Stored, ArchiveError> {
        let store_err = |source| ArchiveError::Store { source };
        let mut writer = self.blobs.writer().map_err(store_err)?;
        let mut buf = vec![0u8; CHUNK];
        let mut side: Option<SideDecoder> = None;
        let mut compression = Compression::None;
        let mut side_ok = true;
        let mut got = 0u64;
        loop {
            let n = read_some(entry, &mut buf)
                .map_err(|e| read_error(|| format!("\"{name}\" is cut"), e))?;
            if n == 0 {
                break;
            }
            if got == 0 {
                compression = sniff(&buf[..n]);
                side = SideDecoder::new(compression);
            }
            got += n as u64;
            writer
                .write_all(&buf[..n])
                .map_err(|source| ArchiveError::WriteBlob {
                    entry: name.to_owned(),
                    source,
                })?;
            if let Some(d) = side.as_mut()
                && side_ok
                && d.write_all(&buf[..n]).is_err()
            {
                side_ok = false;
            }
        }
        if got != size {
            return Err(cut(name, got, size));
        }
        let expected = layout_digest(name);
        let committed = writer.commit(expected.as_deref()).map_err(|e| match e {
            BlobError::Mismatch { expected, actual } => ArchiveError::DigestMismatch {
                entry: name.to_owned(),
                expected,
                actual,
            },
            e => store_err(e),
        })?;
        if !committed.existed {
            self.added.push(committed.digest.clone());
        }
        let uncompressed_digest = match side {
            None => Some(committed.digest.clone()),
            Some(d) if side_ok => d.finish(),
            Some(_) => None,
        };
        Ok(Stored {
            digest: committed.digest,
            size: committed.size,
            compression,
            uncompressed_digest,
        })
    }
}

fn cut(name: &str, got: u64, size: u64) -> ArchiveError {
    ArchiveError::Truncated {
        what: format!("\"{name}\" ends after {got} of its {size} bytes"),
    }
}

/// Reads until `buf` is full or the reader ends.
fn read_some(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Decompresses a blob beside its storing, to learn its diff id in the same pass.
enum SideDecoder {
    Gzip(Box<flate2::write::MultiGzDecoder<HashWriter<io::Sink>>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, HashWriter<io::Sink>>>),
}

impl SideDecoder {
    fn new(compression: Compression) -> Option<SideDecoder> {
        let sink = HashWriter::new(io::sink());
        match compression {
            Compression::None => None,
            Compression::Gzip => Some(SideDecoder::Gzip(Box::new(
                flate2::write::MultiGzDecoder::new(sink),
            ))),
            Compression::Zstd => zstd::stream::write::Decoder::new(sink)
                .ok()
                .map(|d| SideDecoder::Zstd(Box::new(d))),
        }
    }

    /// The digest of everything decompressed; `None` if the stream is incomplete.
    fn finish(self) -> Option<String> {
        let hashed = match self {
            SideDecoder::Gzip(d) => d.finish().ok()?,
            SideDecoder::Zstd(d) => d.finish().ok()?,
        };
        Some(hashed.finish().0)
    }
}

impl Write for SideDecoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            SideDecoder::Gzip(d) => d.write(buf),
            SideDecoder::Zstd(d) => d.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            SideDecoder::Gzip(d) => d.flush(),
            SideDecoder::Zstd(d) => d.flush(),
        }
    }
}
