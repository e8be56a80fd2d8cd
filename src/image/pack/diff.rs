//! The vfs driver's diff: a rootfs compared with the merged view of its image's layers.
//!
//! First the changes are found (a tree of names, no contents kept), then written in the
//! same order the upper walk uses; a directory holding changes is written even when it did
//! not change itself, so the layer restores its owner and mode (Docker's `ChangesDirs`
//! does the same). Directory mtimes alone are not a change: adding a file changes them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::fcntl::{OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag};

use super::PackError;
use super::emit::{Packer, dup, file_type, join, read_xattrs};
use crate::storage::safefs;

/// One directory of the merged lower view: that directory in every layer that contributes
/// to it, top-most first (the list ends at an opaque one, or where a layer deletes or
/// replaces it).
struct LowerDir {
    layers: Vec<OwnedFd>,
}

/// The top-most occurrence of a name in a [`LowerDir`].
struct LowerEntry {
    /// Index in `LowerDir::layers` of the layer that provides it.
    at: usize,
    st: FileStat,
}

fn opaque(fd: BorrowedFd<'_>) -> io::Result<bool> {
    match xattr::FileExt::get_xattr(&dup(fd)?, safefs::OPAQUE_XATTR) {
        Ok(v) => Ok(v.is_some_and(|v| v == b"y")),
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Ok(false),
        Err(e) => Err(e),
    }
}

impl LowerDir {
    /// What the merged view shows in this directory; whited-out names are not there.
    fn list(&self) -> nix::Result<BTreeMap<Vec<u8>, LowerEntry>> {
        let mut seen: BTreeMap<Vec<u8>, Option<LowerEntry>> = BTreeMap::new();
        for (at, fd) in self.layers.iter().enumerate() {
            for name in safefs::list_dir(fd.as_fd())? {
                if seen.contains_key(&name) {
                    continue;
                }
                let Some(st) = safefs::lstat_at(fd.as_fd(), &name)? else {
                    continue;
                };
                let entry = (!safefs::is_whiteout(&st)).then_some(LowerEntry { at, st });
                seen.insert(name, entry);
            }
        }
        Ok(seen
            .into_iter()
            .filter_map(|(n, e)| Some((n, e?)))
            .collect())
    }

    /// The merged view of the subdirectory `name`, whose top-most occurrence is `entry`.
    fn child(&self, name: &[u8], entry: &LowerEntry) -> io::Result<LowerDir> {
        let mut layers = Vec::new();
        for fd in &self.layers[entry.at..] {
            let Some(st) = safefs::lstat_at(fd.as_fd(), name)? else {
                continue;
            };
            if !safefs::is_dir(&st) {
                break; // deleted or replaced from this layer down
            }
            let sub = safefs::open_dir_at(fd.as_fd(), name)?;
            let stop = opaque(sub.as_fd())?;
            layers.push(sub);
            if stop {
                break;
            }
        }
        Ok(LowerDir { layers })
    }
}

/// What to write for one name of a directory.
enum Change {
    /// A non-directory added or changed, or a directory added: written with all below it.
    Whole,
    /// A directory present in both: written, then the changes inside it.
    Dir(DirChanges),
}

#[derive(Default)]
struct DirChanges {
    /// Names the lower view has and the rootfs does not.
    deleted: Vec<Vec<u8>>,
    changed: BTreeMap<Vec<u8>, Change>,
}

impl DirChanges {
    fn is_empty(&self) -> bool {
        self.deleted.is_empty() && self.changed.is_empty()
    }

    /// Adds the entry at `comps` (and the directories leading to it) to what is written.
    fn insert(&mut self, comps: &[&[u8]]) {
        let Some((first, rest)) = comps.split_first() else {
            return;
        };
        if rest.is_empty() {
            self.changed.entry(first.to_vec()).or_insert(Change::Whole);
            return;
        }
        match self
            .changed
            .entry(first.to_vec())
            .or_insert_with(|| Change::Dir(DirChanges::default()))
        {
            Change::Whole => {} // written with everything below it already
            Change::Dir(inner) => inner.insert(rest),
        }
    }
}

/// The names of files with several links, and which of those inodes the layer writes.
#[derive(Default)]
struct LinkGroups {
    names: HashMap<(u64, u64), Vec<Vec<u8>>>,
    written: HashSet<(u64, u64)>,
}

impl LinkGroups {
    fn note(&mut self, st: &FileStat, rel: &[u8], written: bool) {
        if safefs::is_dir(st) || st.st_nlink < 2 {
            return;
        }
        let key = (st.st_dev, st.st_ino);
        self.names.entry(key).or_default().push(rel.to_vec());
        if written {
            self.written.insert(key);
        }
    }

    /// A file the layer writes under one name is written under all its names, so the
    /// layer keeps them linked (a new link to an unchanged file would otherwise become a
    /// copy).
    fn complete(self, changes: &mut DirChanges) {
        for key in &self.written {
            for rel in &self.names[key] {
                let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
                changes.insert(&comps);
            }
        }
    }
}

pub(super) fn walk(
    packer: &mut Packer<'_>,
    lowers_top_first: &[PathBuf],
    compare_contents: bool,
) -> Result<(), PackError> {
    let root = packer.open_root()?;
    let mut layers = Vec::new();
    for dir in lowers_top_first {
        let fd = safefs::open_dir(dir).map_err(|e| PackError::OpenRoot {
            path: dir.clone(),
            source: e.into(),
        })?;
        let stop = opaque(fd.as_fd()).map_err(|source| PackError::Fs {
            op: "read the xattrs of",
            path: dir.clone(),
            source,
        })?;
        layers.push(fd);
        if stop {
            break;
        }
    }
    let mut finder = Finder {
        packer,
        compare_contents,
        links: LinkGroups::default(),
    };
    let mut changes = finder.dir(root.as_fd(), &LowerDir { layers }, b"")?;
    finder.links.complete(&mut changes);
    write(packer, root.as_fd(), b"", &changes)
}

struct Finder<'p, 'a> {
    packer: &'p Packer<'a>,
    compare_contents: bool,
    links: LinkGroups,
}

impl Finder<'_, '_> {
    /// Notes the linked files below an added directory (all of them are written).
    fn added_dir(&mut self, dir: BorrowedFd<'_>, name: &[u8], rel: &[u8]) -> Result<(), PackError> {
        let p = self.packer;
        let fd = safefs::open_dir_at(dir, name).map_err(|e| p.fs_err("open", rel, e))?;
        for child in safefs::list_dir(fd.as_fd()).map_err(|e| p.fs_err("list", rel, e))? {
            let child_rel = join(rel, &child);
            if p.excluded(&child_rel) {
                continue;
            }
            let Some(st) = safefs::lstat_at(fd.as_fd(), &child)
                .map_err(|e| p.fs_err("inspect", &child_rel, e))?
            else {
                continue;
            };
            self.links.note(&st, &child_rel, true);
            if safefs::is_dir(&st) {
                self.added_dir(fd.as_fd(), &child, &child_rel)?;
            }
        }
        Ok(())
    }

    fn dir(
        &mut self,
        fd: BorrowedFd<'_>,
        lower: &LowerDir,
        rel: &[u8],
    ) -> Result<DirChanges, PackError> {
        let p = self.packer;
        let mut names = safefs::list_dir(fd).map_err(|e| p.fs_err("list", rel, e))?;
        names.sort();
        let below = lower
            .list()
            .map_err(|e| p.fs_err("list the image's layers at", rel, e))?;
        let mut out = DirChanges::default();
        for name in below.keys() {
            if names.binary_search(name).is_err() && !p.excluded(&join(rel, name)) {
                out.deleted.push(name.clone());
            }
        }
        for name in names {
            let child = join(rel, &name);
            if p.excluded(&child) {
                continue;
            }
            let Some(st) =
                safefs::lstat_at(fd, &name).map_err(|e| p.fs_err("inspect", &child, e))?
            else {
                continue;
            };
            let change = match below.get(&name) {
                None => Some(Change::Whole),
                Some(l) if file_type(&l.st) != file_type(&st) => Some(Change::Whole),
                Some(l) if safefs::is_dir(&st) => {
                    let sub =
                        safefs::open_dir_at(fd, &name).map_err(|e| p.fs_err("open", &child, e))?;
                    let lower_sub = lower
                        .child(&name, l)
                        .map_err(|e| p.fs_io_err("open the image's layers at", &child, e))?;
                    let inner = self.dir(sub.as_fd(), &lower_sub, &child)?;
                    let differs = !self.same(fd, &lower.layers[l.at], &name, &child, &st, &l.st)?;
                    (differs || !inner.is_empty()).then_some(Change::Dir(inner))
                }
                Some(l) => (!self.same(fd, &lower.layers[l.at], &name, &child, &st, &l.st)?)
                    .then_some(Change::Whole),
            };
            let written = change.is_some();
            self.links.note(&st, &child, written);
            if matches!(change, Some(Change::Whole)) && safefs::is_dir(&st) {
                self.added_dir(fd, &name, &child)?;
            }
            if let Some(change) = change {
                out.changed.insert(name, change);
            }
        }
        Ok(out)
    }

    /// Whether `name` is the same in the rootfs (`dir`, `st`) as in the layer that provides
    /// it (`lower_dir`, `lst`). Both have the same file type.
    fn same(
        &self,
        dir: BorrowedFd<'_>,
        lower_dir: &OwnedFd,
        name: &[u8],
        rel: &[u8],
        st: &FileStat,
        lst: &FileStat,
    ) -> Result<bool, PackError> {
        let p = self.packer;
        let kind = file_type(st);
        let is_dir = kind == SFlag::S_IFDIR.bits();
        if st.st_mode & 0o7777 != lst.st_mode & 0o7777
            || (st.st_uid, st.st_gid) != (lst.st_uid, lst.st_gid)
        {
            return Ok(false);
        }
        if !is_dir && (st.st_mtime, st.st_mtime_nsec) != (lst.st_mtime, lst.st_mtime_nsec) {
            return Ok(false);
        }
        if kind == SFlag::S_IFLNK.bits() {
            let a = readlinkat(dir, std::ffi::OsStr::from_bytes(name))
                .map_err(|e| p.fs_err("read the link", rel, e))?;
            let b = readlinkat(lower_dir.as_fd(), std::ffi::OsStr::from_bytes(name))
                .map_err(|e| p.fs_err("read the image's link", rel, e))?;
            return Ok(a == b);
        }
        if kind == SFlag::S_IFCHR.bits() || kind == SFlag::S_IFBLK.bits() {
            return Ok(st.st_rdev == lst.st_rdev);
        }
        if is_dir {
            let a = safefs::open_dir_at(dir, name).map_err(|e| p.fs_err("open", rel, e))?;
            let b = safefs::open_dir_at(lower_dir.as_fd(), name)
                .map_err(|e| p.fs_err("open the image's copy of", rel, e))?;
            let a = dup(a.as_fd()).map_err(|e| p.fs_io_err("open", rel, e))?;
            let b = dup(b.as_fd()).map_err(|e| p.fs_io_err("open the image's copy of", rel, e))?;
            return self.same_xattrs(&a, &b, rel);
        }
        if kind != SFlag::S_IFREG.bits() {
            return Ok(true); // fifos: mode, owner and mtime said it all
        }
        if st.st_size != lst.st_size {
            return Ok(false);
        }
        let open = |d: BorrowedFd<'_>| {
            openat(
                d,
                std::ffi::OsStr::from_bytes(name),
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
                Mode::empty(),
            )
            .map(File::from)
        };
        let mut a = open(dir).map_err(|e| p.fs_err("open", rel, e))?;
        let mut b =
            open(lower_dir.as_fd()).map_err(|e| p.fs_err("open the image's copy of", rel, e))?;
        if !self.same_xattrs(&a, &b, rel)? {
            return Ok(false);
        }
        if !self.compare_contents {
            return Ok(true);
        }
        same_contents(&mut a, &mut b).map_err(|e| p.fs_io_err("compare the contents of", rel, e))
    }

    fn same_xattrs(&self, a: &File, b: &File, rel: &[u8]) -> Result<bool, PackError> {
        let p = self.packer;
        let a = read_xattrs(a).map_err(|e| p.fs_io_err("read the xattrs of", rel, e))?;
        let b = read_xattrs(b).map_err(|e| p.fs_io_err("read the image's xattrs of", rel, e))?;
        Ok(a == b)
    }
}

fn same_contents(a: &mut File, b: &mut File) -> io::Result<bool> {
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let n = read_full(a, &mut ba)?;
        let m = read_full(b, &mut bb)?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Writes the changes found in the directory `fd` (at `rel`).
fn write(
    packer: &mut Packer<'_>,
    fd: BorrowedFd<'_>,
    rel: &[u8],
    changes: &DirChanges,
) -> Result<(), PackError> {
    for name in &changes.deleted {
        packer.whiteout(rel, name)?;
    }
    for (name, change) in &changes.changed {
        let child = join(rel, name);
        let Some(st) =
            safefs::lstat_at(fd, name).map_err(|e| packer.fs_err("inspect", &child, e))?
        else {
            return Err(PackError::Changed {
                path: packer.path(&child),
            });
        };
        let sub = packer.entry(fd, name, &child, &st)?;
        match (change, sub) {
            (Change::Whole, Some(sub)) => whole(packer, sub.as_fd(), &child)?,
            (Change::Dir(inner), Some(sub)) => write(packer, sub.as_fd(), &child, inner)?,
            (Change::Whole, None) => {}
            (Change::Dir(_), None) => {
                return Err(PackError::Changed {
                    path: packer.path(&child),
                });
            }
        }
    }
    Ok(())
}

/// Writes everything below an added directory.
fn whole(packer: &mut Packer<'_>, fd: BorrowedFd<'_>, rel: &[u8]) -> Result<(), PackError> {
    let mut names = safefs::list_dir(fd).map_err(|e| packer.fs_err("list", rel, e))?;
    names.sort();
    for name in names {
        let child = join(rel, &name);
        if packer.excluded(&child) {
            continue;
        }
        let Some(st) =
            safefs::lstat_at(fd, &name).map_err(|e| packer.fs_err("inspect", &child, e))?
        else {
            continue;
        };
        if let Some(sub) = packer.entry(fd, &name, &child, &st)? {
            whole(packer, sub.as_fd(), &child)?;
        }
    }
    Ok(())
}
