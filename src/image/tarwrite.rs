//! Writing tar streams entry by entry: a ustar header, with a PAX extended header before it
//! where ustar falls short (names and link targets over 100 bytes, ids, sizes and times that
//! do not fit its octal fields, xattrs). This is the form Docker (Go's archive/tar in PAX
//! mode) writes and every reader we care about accepts.
//!
//! The `tar` crate parses for us and builds the 512-byte header blocks, but its `Builder`
//! spells long names as GNU `L` entries and has no PAX writer, so the stream is put together
//! here. Nothing is buffered beyond one header: contents are copied from a reader.

#![allow(dead_code)] // until the engine calls it (the layer writer and archives land)

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use tar::{EntryType, Header};

const BLOCK: u64 = 512;
/// Largest value of an 8-byte octal ustar field (uid, gid, mode).
const MAX_OCTAL_8: u64 = 0o7777777;
/// Largest value of a 12-byte octal ustar field (size, mtime).
const MAX_OCTAL_12: u64 = 0o77777777777;

/// One entry's header, as it goes into the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarHeader {
    /// The entry name as raw bytes; directories end with `/`.
    pub name: Vec<u8>,
    pub kind: EntryType,
    /// Permission bits with setuid, setgid and sticky (no file type bits).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Bytes of content that follow; 0 for everything but regular files.
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// Symlink or hard link target.
    pub link: Vec<u8>,
    /// Major and minor numbers of a device.
    pub device: (u32, u32),
    /// Extended attributes, written as `SCHILY.xattr.NAME` records.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl TarHeader {
    pub fn new(name: Vec<u8>, kind: EntryType) -> TarHeader {
        TarHeader {
            name,
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            link: Vec::new(),
            device: (0, 0),
            xattrs: BTreeMap::new(),
        }
    }
}

/// PAX records (sorted by key) for what the ustar header cannot hold.
fn pax_records(h: &TarHeader) -> Vec<u8> {
    let mut records: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if h.name.len() > 100 {
        records.insert("path".into(), h.name.clone());
    }
    if h.link.len() > 100 {
        records.insert("linkpath".into(), h.link.clone());
    }
    if h.uid > MAX_OCTAL_8 {
        records.insert("uid".into(), h.uid.to_string().into_bytes());
    }
    if h.gid > MAX_OCTAL_8 {
        records.insert("gid".into(), h.gid.to_string().into_bytes());
    }
    if h.size > MAX_OCTAL_12 {
        records.insert("size".into(), h.size.to_string().into_bytes());
    }
    if h.mtime < 0 || h.mtime as u64 > MAX_OCTAL_12 {
        records.insert("mtime".into(), h.mtime.to_string().into_bytes());
    }
    for (name, value) in &h.xattrs {
        records.insert(format!("SCHILY.xattr.{name}"), value.clone());
    }
    let mut out = Vec::new();
    for (key, value) in records {
        out.extend_from_slice(&pax_record(&key, &value));
    }
    out
}

/// `"<len> <key>=<value>\n"`, where `<len>` counts the whole record, itself included.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut rec = format!("{len} {key}=").into_bytes();
    rec.extend_from_slice(value);
    rec.push(b'\n');
    rec
}

/// Copies at most `field.len()` bytes of `value` into a NUL-padded header field.
fn put(field: &mut [u8], value: &[u8]) {
    field.fill(0);
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

fn ustar_block(h: &TarHeader) -> Header {
    let mut block = Header::new_ustar();
    block.set_entry_type(h.kind);
    block.set_mode(h.mode & 0o7777);
    // Values too large for octal go into PAX records; the field gets a clamped value.
    block.set_uid(h.uid.min(MAX_OCTAL_8));
    block.set_gid(h.gid.min(MAX_OCTAL_8));
    block.set_size(h.size.min(MAX_OCTAL_12));
    block.set_mtime(u64::try_from(h.mtime).unwrap_or(0).min(MAX_OCTAL_12));
    if matches!(h.kind, EntryType::Char | EntryType::Block) {
        // Cannot fail for ustar headers.
        let _ = block.set_device_major(h.device.0);
        let _ = block.set_device_minor(h.device.1);
    }
    if let Some(ustar) = block.as_ustar_mut() {
        put(&mut ustar.name, &h.name);
        put(&mut ustar.linkname, &h.link);
    }
    block.set_cksum();
    block
}

/// The name of the PAX header entry for `name`: `PaxHeaders.0/<base name>`, as Go writes it,
/// cut to fit the ustar name field.
fn pax_entry_name(name: &[u8]) -> Vec<u8> {
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let base = trimmed.rsplit(|&b| b == b'/').next().unwrap_or(trimmed);
    let mut out = b"PaxHeaders.0/".to_vec();
    out.extend_from_slice(base);
    out.truncate(100);
    out
}

/// Writes the header (and its PAX header when needed). The caller then writes exactly
/// `h.size` bytes of content and [`write_padding`].
pub fn write_header<W: Write + ?Sized>(out: &mut W, h: &TarHeader) -> io::Result<()> {
    let records = pax_records(h);
    if !records.is_empty() {
        let mut pax = TarHeader::new(pax_entry_name(&h.name), EntryType::XHeader);
        pax.size = records.len() as u64;
        out.write_all(ustar_block(&pax).as_bytes())?;
        out.write_all(&records)?;
        write_padding(out, pax.size)?;
    }
    out.write_all(ustar_block(h).as_bytes())
}

/// Zeroes after `size` bytes of content, up to the next 512-byte block.
pub fn write_padding<W: Write + ?Sized>(out: &mut W, size: u64) -> io::Result<()> {
    let rem = (size % BLOCK) as usize;
    if rem != 0 {
        out.write_all(&[0u8; BLOCK as usize][rem..])?;
    }
    Ok(())
}

/// The end-of-archive marker: two zero blocks.
pub fn write_end<W: Write + ?Sized>(out: &mut W) -> io::Result<()> {
    out.write_all(&[0u8; 2 * BLOCK as usize])
}

/// Why [`copy_content`] stopped.
#[derive(Debug)]
pub enum CopyError {
    /// The source gave fewer or more bytes than the header announced.
    Length,
    Read(io::Error),
    Write(io::Error),
}

/// Copies exactly `size` bytes from `src` to `out` and pads the entry. A source that ends
/// early or has more to give is a [`CopyError::Length`]: the header already promised `size`.
pub fn copy_content<R: Read + ?Sized, W: Write + ?Sized>(
    src: &mut R,
    out: &mut W,
    size: u64,
) -> Result<(), CopyError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match src.read(&mut buf[..want]) {
            Ok(0) => return Err(CopyError::Length),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
        left -= n as u64;
    }
    let mut probe = [0u8; 1];
    loop {
        match src.read(&mut probe) {
            Ok(0) => break,
            Ok(_) => return Err(CopyError::Length),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        }
    }
    write_padding(out, size).map_err(CopyError::Write)
}

/// Writes a whole in-memory file entry (metadata files of an archive).
pub fn write_bytes<W: Write + ?Sized>(
    out: &mut W,
    name: &[u8],
    mtime: i64,
    data: &[u8],
) -> io::Result<()> {
    let mut h = TarHeader::new(name.to_vec(), EntryType::Regular);
    h.size = data.len() as u64;
    h.mtime = mtime;
    write_header(out, &h)?;
    out.write_all(data)?;
    write_padding(out, h.size)
}

/// A writer that hashes (sha256) and counts what goes through it.
pub struct HashWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> HashWriter<W> {
        use sha2::Digest;
        HashWriter {
            inner,
            hasher: sha2::Sha256::new(),
            count: 0,
        }
    }

    /// `sha256:<hex>` of everything written, the byte count, and the inner writer.
    pub fn finish(self) -> (String, u64, W) {
        use sha2::Digest;
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        (digest, self.count, self.inner)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Name, type, uid, content length, link target, xattrs of each entry.
    type Listed = (
        Vec<u8>,
        EntryType,
        u64,
        u64,
        Vec<u8>,
        Vec<(String, Vec<u8>)>,
    );

    fn read_back(bytes: &[u8]) -> Vec<Listed> {
        let mut archive = tar::Archive::new(bytes);
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut e = entry.unwrap();
            let mut xattrs = Vec::new();
            if let Some(exts) = e.pax_extensions().unwrap() {
                for ext in exts {
                    let ext = ext.unwrap();
                    if let Some(n) = ext.key().unwrap().strip_prefix("SCHILY.xattr.") {
                        xattrs.push((n.to_owned(), ext.value_bytes().to_vec()));
                    }
                }
            }
            let name = e.path_bytes().into_owned();
            let kind = e.header().entry_type();
            let uid = e.header().uid().unwrap();
            let link = e
                .link_name_bytes()
                .map(|l| l.into_owned())
                .unwrap_or_default();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.push((name, kind, uid, data.len() as u64, link, xattrs));
        }
        out
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        assert_eq!(pax_record("path", b"a"), b"9 path=a\n");
        // 98 bytes without the length: 2 digits would make 100, which needs 3 digits.
        let value = vec![b'x'; 93];
        let rec = pax_record("ab", &value);
        assert!(rec.starts_with(b"101 ab="));
        assert_eq!(rec.len(), 101);
    }

    #[test]
    fn long_names_links_ids_and_xattrs_survive_the_tar_crate() {
        let long = format!("{}/file", "d".repeat(150)).into_bytes();
        let mut out = Vec::new();
        let mut h = TarHeader::new(long.clone(), EntryType::Regular);
        h.size = 3;
        h.uid = 5_000_000;
        h.xattrs.insert("user.k".into(), b"v\0bin".to_vec());
        write_header(&mut out, &h).unwrap();
        copy_content(&mut &b"abc"[..], &mut out, 3).unwrap();
        let mut l = TarHeader::new(b"link".to_vec(), EntryType::Link);
        l.link = long.clone();
        write_header(&mut out, &l).unwrap();
        write_bytes(&mut out, b"short", 0, b"xyz").unwrap();
        write_end(&mut out).unwrap();
        assert_eq!(out.len() % 512, 0);

        let got = read_back(&out);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0, long);
        assert_eq!((got[0].2, got[0].3), (5_000_000, 3));
        assert_eq!(got[0].5, vec![("user.k".to_owned(), b"v\0bin".to_vec())]);
        assert_eq!((got[1].1, &got[1].4), (EntryType::Link, &long));
        assert_eq!(got[2].0, b"short");
    }

    #[test]
    fn copy_content_refuses_a_source_of_the_wrong_length() {
        let mut out = Vec::new();
        assert!(matches!(
            copy_content(&mut &b"ab"[..], &mut out, 3),
            Err(CopyError::Length)
        ));
        assert!(matches!(
            copy_content(&mut &b"abcd"[..], &mut out, 3),
            Err(CopyError::Length)
        ));
        let mut out = Vec::new();
        copy_content(&mut &b"abc"[..], &mut out, 3).unwrap();
        assert_eq!(out.len(), 512);
    }
}
