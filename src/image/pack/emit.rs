//! Writes one file system entry (header, PAX records, content) into the layer stream. The
//! walkers in `upper` and `diff` decide what to write and in which order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, major, minor};
use tar::EntryType;
use xattr::FileExt;

use super::{PackError, TarStats, write_end};
use crate::image::tarwrite::{self, CopyError, TarHeader};
use crate::storage::safefs::{self, XattrPolicy};

pub(super) const WHITEOUT_PREFIX: &[u8] = b".wh.";
pub(super) const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";
/// Mode of the whiteout and opaque marker entries (Docker writes its whiteouts 0600).
const MARKER_MODE: u32 = 0o600;

/// `dir/name`, or `name` at the root.
pub(super) fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut out = Vec::with_capacity(dir.len() + 1 + name.len());
    out.extend_from_slice(dir);
    out.push(b'/');
    out.extend_from_slice(name);
    out
}

pub(super) fn file_type(st: &FileStat) -> u32 {
    st.st_mode & SFlag::S_IFMT.bits()
}

/// Whether an xattr goes into the layer: what unpacking would apply, less the private
/// attributes of the overlay implementations.
pub(super) fn carried_xattr(name: &str) -> bool {
    safefs::xattr_policy(name) != XattrPolicy::Skip
}

/// The xattrs of an open file that go into the layer, sorted by name.
pub(super) fn read_xattrs(file: &File) -> io::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let names = match file.list_xattr() {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
        Err(e) => return Err(e),
    };
    for name in names {
        let Some(name) = name.to_str() else { continue };
        if !carried_xattr(name) {
            continue;
        }
        if let Some(mut value) = file.get_xattr(name)? {
            if name == "security.capability" {
                value = capability_v2(value);
            }
            out.insert(name.to_owned(), value);
        }
    }
    Ok(out)
}

/// A version 3 file capability names the root id of the user namespace it was set in;
/// layers carry version 2 (Docker's `ReadSecurityXattrToTarHeader` does the same).
fn capability_v2(mut value: Vec<u8>) -> Vec<u8> {
    const REVISION_BYTE: usize = 3;
    const V2_SIZE: usize = 20;
    if value.len() > REVISION_BYTE && value[REVISION_BYTE] == 3 {
        value[REVISION_BYTE] = 2;
        value.truncate(V2_SIZE);
    }
    value
}

pub(super) fn dup(fd: BorrowedFd<'_>) -> io::Result<File> {
    fd.try_clone_to_owned().map(File::from)
}

fn errno_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

pub(super) struct Packer<'a> {
    root: &'a Path,
    out: &'a mut dyn Write,
    /// Relative paths (no leading `/`) left out with everything below them.
    exclude: BTreeSet<Vec<u8>>,
    /// (dev, ino) of files with several links → the name they were first written under.
    links: HashMap<(u64, u64), Vec<u8>>,
    stats: TarStats,
}

impl<'a> Packer<'a> {
    pub(super) fn new(root: &'a Path, out: &'a mut dyn Write, exclude: &[String]) -> Self {
        let exclude = exclude
            .iter()
            .map(|p| {
                p.split('/')
                    .filter(|c| !c.is_empty() && *c != ".")
                    .collect::<Vec<_>>()
                    .join("/")
                    .into_bytes()
            })
            .filter(|p| !p.is_empty())
            .collect();
        Packer {
            root,
            out,
            exclude,
            links: HashMap::new(),
            stats: TarStats::default(),
        }
    }

    pub(super) fn root_path(&self) -> &Path {
        self.root
    }

    pub(super) fn open_root(&self) -> Result<OwnedFd, PackError> {
        safefs::open_dir(self.root).map_err(|e| PackError::OpenRoot {
            path: self.root.to_owned(),
            source: errno_io(e),
        })
    }

    pub(super) fn excluded(&self, rel: &[u8]) -> bool {
        self.exclude.contains(rel)
    }

    pub(super) fn path(&self, rel: &[u8]) -> PathBuf {
        self.root.join(OsStr::from_bytes(rel))
    }

    pub(super) fn fs_err(&self, op: &'static str, rel: &[u8], e: Errno) -> PackError {
        self.fs_io_err(op, rel, errno_io(e))
    }

    pub(super) fn fs_io_err(&self, op: &'static str, rel: &[u8], source: io::Error) -> PackError {
        PackError::Fs {
            op,
            path: self.path(rel),
            source,
        }
    }

    fn header(&mut self, h: &TarHeader) -> Result<(), PackError> {
        tarwrite::write_header(self.out, h).map_err(|source| PackError::Write { source })?;
        self.stats.entries += 1;
        Ok(())
    }

    /// An empty regular file marking a deletion or an opaque directory.
    fn marker(&mut self, name: Vec<u8>) -> Result<(), PackError> {
        let mut h = TarHeader::new(name, EntryType::Regular);
        h.mode = MARKER_MODE;
        self.header(&h)
    }

    /// `DIR/.wh.NAME`: NAME in the layers below is deleted.
    pub(super) fn whiteout(&mut self, dir: &[u8], name: &[u8]) -> Result<(), PackError> {
        let mut base = WHITEOUT_PREFIX.to_vec();
        base.extend_from_slice(name);
        self.marker(join(dir, &base))
    }

    /// `DIR/.wh..wh..opq`: DIR hides what the layers below have in it.
    pub(super) fn opaque(&mut self, dir: &[u8]) -> Result<(), PackError> {
        self.marker(join(dir, OPAQUE_WHITEOUT))
    }

    /// Writes the entry `name` of `dir` (whose `lstat` is `st`) as `rel`. Returns the
    /// opened directory when the entry is one, for the caller to descend into.
    pub(super) fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        rel: &[u8],
        st: &FileStat,
    ) -> Result<Option<OwnedFd>, PackError> {
        let kind = file_type(st);
        let mut h = TarHeader::new(rel.to_vec(), EntryType::Regular);
        h.mode = st.st_mode & 0o7777;
        h.uid = u64::from(st.st_uid);
        h.gid = u64::from(st.st_gid);
        h.mtime = st.st_mtime;

        if kind == SFlag::S_IFDIR.bits() {
            let fd = safefs::open_dir_at(dir, name).map_err(|e| self.fs_err("open", rel, e))?;
            let file = dup(fd.as_fd()).map_err(|e| self.fs_io_err("open", rel, e))?;
            h.xattrs =
                read_xattrs(&file).map_err(|e| self.fs_io_err("read the xattrs of", rel, e))?;
            h.kind = EntryType::Directory;
            h.name.push(b'/');
            self.header(&h)?;
            return Ok(Some(fd));
        }
        if kind == SFlag::S_IFSOCK.bits() {
            tracing::debug!(path = ?self.path(rel), "sockets cannot go into a layer; skipped");
            return Ok(None);
        }
        let key = (st.st_dev, st.st_ino);
        if st.st_nlink > 1 {
            if let Some(first) = self.links.get(&key) {
                h.kind = EntryType::Link;
                h.link = first.clone();
                self.header(&h)?;
                return Ok(None);
            }
            self.links.insert(key, rel.to_vec());
        }
        if kind == SFlag::S_IFREG.bits() {
            self.file(dir, name, rel, st, h)?;
        } else if kind == SFlag::S_IFLNK.bits() {
            let target = readlinkat(dir, OsStr::from_bytes(name))
                .map_err(|e| self.fs_err("read the link", rel, e))?;
            h.kind = EntryType::Symlink;
            h.link = target.as_bytes().to_vec();
            self.header(&h)?;
        } else if kind == SFlag::S_IFIFO.bits() {
            h.kind = EntryType::Fifo;
            self.header(&h)?;
        } else if kind == SFlag::S_IFCHR.bits() || kind == SFlag::S_IFBLK.bits() {
            h.kind = if kind == SFlag::S_IFCHR.bits() {
                EntryType::Char
            } else {
                EntryType::Block
            };
            let (maj, min) = (major(st.st_rdev), minor(st.st_rdev));
            h.device = (
                u32::try_from(maj).unwrap_or(u32::MAX),
                u32::try_from(min).unwrap_or(u32::MAX),
            );
            self.header(&h)?;
        } else {
            tracing::debug!(path = ?self.path(rel), mode = st.st_mode, "unknown file type; skipped");
        }
        Ok(None)
    }

    fn file(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        rel: &[u8],
        st: &FileStat,
        mut h: TarHeader,
    ) -> Result<(), PackError> {
        let fd = openat(
            dir,
            OsStr::from_bytes(name),
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ELOOP | Errno::ENOENT => PackError::Changed {
                path: self.path(rel),
            },
            e => self.fs_err("open", rel, e),
        })?;
        let now = fstat(&fd).map_err(|e| self.fs_err("inspect", rel, e))?;
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
            return Err(PackError::Changed {
                path: self.path(rel),
            });
        }
        let mut file = File::from(fd);
        h.xattrs = read_xattrs(&file).map_err(|e| self.fs_io_err("read the xattrs of", rel, e))?;
        h.size = u64::try_from(now.st_size).unwrap_or(0);
        h.mode = now.st_mode & 0o7777;
        h.uid = u64::from(now.st_uid);
        h.gid = u64::from(now.st_gid);
        h.mtime = now.st_mtime;
        self.header(&h)?;
        tarwrite::copy_content(&mut file, self.out, h.size).map_err(|e| match e {
            CopyError::Length => PackError::Changed {
                path: self.path(rel),
            },
            CopyError::Read(source) => self.fs_io_err("read", rel, source),
            CopyError::Write(source) => PackError::Write { source },
        })?;
        self.stats.content_bytes += h.size;
        Ok(())
    }

    pub(super) fn finish(self) -> Result<TarStats, PackError> {
        write_end(self.out)?;
        self.out
            .flush()
            .map_err(|source| PackError::Write { source })?;
        Ok(self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_v3_become_v2_and_others_stay() {
        let mut v3 = vec![0u8; 24];
        v3[3] = 3;
        v3[20] = 7; // root id
        let v2 = capability_v2(v3);
        assert_eq!((v2.len(), v2[3]), (20, 2));
        let mut already = vec![0u8; 20];
        already[3] = 2;
        assert_eq!(capability_v2(already.clone()), already);
    }

    #[test]
    fn overlay_private_xattrs_stay_out() {
        for name in [
            "user.overlay.opaque",
            "user.overlay.origin",
            "trusted.overlay.opaque",
            "user.fuseoverlayfs.opaque",
            "user.fuseoverlayfs.origin",
            "security.selinux",
        ] {
            assert!(!carried_xattr(name), "{name}");
        }
        for name in ["user.mime_type", "security.capability", "trusted.app"] {
            assert!(carried_xattr(name), "{name}");
        }
    }

    #[test]
    fn join_and_exclusions() {
        assert_eq!(join(b"", b"a"), b"a");
        assert_eq!(join(b"a/b", b"c"), b"a/b/c");
        let mut sink = Vec::new();
        let p = Packer::new(
            Path::new("/x"),
            &mut sink,
            &["/etc/hosts".into(), "proc/".into(), "/".into()],
        );
        assert!(p.excluded(b"etc/hosts"));
        assert!(p.excluded(b"proc"));
        assert!(!p.excluded(b"etc"));
        assert!(!p.excluded(b""));
    }
}
