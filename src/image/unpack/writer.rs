//! Writes the entries of one layer's tar stream into a directory, safely (see the parent
//! module for the rules).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, futimens, mkdirat, mknodat,
    utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchown, fchownat, linkat, mkfifoat, symlinkat};
use tar::EntryType;
use xattr::FileExt;

use super::{MAX_ENTRY_PATH, Meta, UnpackError, UnpackOptions, read_meta};
use crate::storage::safefs::{self, OPAQUE_XATTR, WalkError, XattrPolicy};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";
/// aufs keeps its own metadata under `.wh..wh.*`; it means nothing to overlay.
const AUFS_META_PREFIX: &[u8] = b".wh..wh.";
/// Directories appear with this mode while the layer is written and get theirs at the end.
const DIR_MODE_WHILE_UNPACKING: u32 = 0o700;
/// Parents a layer never lists get what Docker gives them.
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// Splits a tar name into components: leading `/` and `.` dropped, `..` applied; `None` when
/// `..` would climb above the root.
pub(super) fn normalize(raw: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out: Vec<&[u8]> = Vec::new();
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out)
}

fn show(comps: &[&[u8]]) -> String {
    String::from_utf8_lossy(&comps.join(&b'/')).into_owned()
}

pub(super) struct Unpacker<'a> {
    layer: &'a str,
    tmp: &'a Path,
    root: OwnedFd,
    opts: &'a UnpackOptions,
    /// The last parent directory resolved: tar streams list siblings together. Dropped
    /// whenever anything is removed, since that may have been a cached directory.
    parent_cache: Option<(Vec<Vec<u8>>, OwnedFd)>,
    /// Directories whose mode and mtime are set at the end, once nothing is written in them.
    dirs: BTreeMap<Vec<Vec<u8>>, (u32, TimeSpec)>,
    size: u64,
}

impl<'a> Unpacker<'a> {
    pub(super) fn new(
        layer: &'a str,
        tmp: &'a Path,
        root: OwnedFd,
        opts: &'a UnpackOptions,
    ) -> Self {
        Unpacker {
            layer,
            tmp,
            root,
            opts,
            parent_cache: None,
            dirs: BTreeMap::new(),
            size: 0,
        }
    }

    pub(super) fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    pub(super) fn size(&self) -> u64 {
        self.size
    }

    pub(super) fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        if raw.len() > MAX_ENTRY_PATH {
            return Err(UnpackError::PathTooLong {
                layer: self.layer.to_owned(),
                prefix: shown.chars().take(64).collect(),
                len: raw.len(),
            });
        }
        let comps = normalize(&raw).ok_or_else(|| UnpackError::Escape {
            layer: self.layer.to_owned(),
            entry: shown.clone(),
        })?;
        let mut kind = entry.header().entry_type();
        // Old tars mark directories only with a trailing slash on a regular entry.
        if kind == EntryType::Regular && raw.ends_with(b"/") {
            kind = EntryType::Directory;
        }
        let meta = read_meta(self.layer, entry, &shown)?;

        let Some(last) = comps.last() else {
            if kind == EntryType::Directory {
                return self.root_dir(&meta, &shown);
            }
            tracing::debug!(layer = self.layer, entry = %shown, "skipping a non-directory entry for the layer root");
            return Ok(());
        };
        if last.starts_with(WHITEOUT_PREFIX) {
            return self.whiteout(&comps, &shown);
        }
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(entry, &comps, &meta, &shown)
            }
            EntryType::Directory => self.dir(&comps, &meta, &shown),
            EntryType::Symlink => {
                let target = self.link_name(entry, &shown)?;
                self.symlink(&comps, &target, &meta, &shown)
            }
            EntryType::Link => {
                let target = self.link_name(entry, &shown)?;
                self.hardlink(&comps, &target, &shown)
            }
            EntryType::Fifo => self.fifo(&comps, &meta, &shown),
            EntryType::Char if device(entry) == Some((0, 0)) => self.make_whiteout(&comps, &shown),
            _ => {
                tracing::debug!(layer = self.layer, entry = %shown, ?kind, "skipping entry (devices and unknown types are not unpacked)");
                Ok(())
            }
        }
    }

    fn link_name<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        shown: &str,
    ) -> Result<Vec<u8>, UnpackError> {
        match entry.link_name_bytes() {
            Some(name) if !name.is_empty() => Ok(name.into_owned()),
            _ => Err(UnpackError::MissingLinkName {
                layer: self.layer.to_owned(),
                entry: shown.to_owned(),
            }),
        }
    }

    fn fs_err(&self, op: &'static str, shown: &str, err: Errno) -> UnpackError {
        UnpackError::Fs {
            layer: self.layer.to_owned(),
            entry: shown.to_owned(),
            op,
            dir: self.tmp.to_owned(),
            source: err.into(),
        }
    }

    fn walk_err(&self, err: WalkError, parents: &[&[u8]], shown: &str) -> UnpackError {
        let upto = |i: usize| show(&parents[..=i.min(parents.len().saturating_sub(1))]);
        match err {
            WalkError::Symlink(i) => UnpackError::SymlinkParent {
                layer: self.layer.to_owned(),
                entry: shown.to_owned(),
                parent: upto(i),
            },
            WalkError::NotDir(i) => UnpackError::NotADirectory {
                layer: self.layer.to_owned(),
                entry: shown.to_owned(),
                parent: upto(i),
            },
            WalkError::Io(e) => self.fs_err("create the parents of", shown, e),
        }
    }

    /// The directory holding `comps`' last component, created as needed, never through a
    /// symlink.
    fn parent(&mut self, comps: &[&[u8]], shown: &str) -> Result<OwnedFd, UnpackError> {
        let parents = &comps[..comps.len().saturating_sub(1)];
        self.dir_fd(parents, shown)
    }

    fn dir_fd(&mut self, dirs: &[&[u8]], shown: &str) -> Result<OwnedFd, UnpackError> {
        if let Some((cached, fd)) = &self.parent_cache
            && cached.iter().map(Vec::as_slice).eq(dirs.iter().copied())
        {
            return fd
                .try_clone()
                .map_err(|e| self.fs_err("open the parent of", shown, io_errno(&e)));
        }
        let mode = Mode::from_bits_truncate(IMPLICIT_DIR_MODE);
        let fd = safefs::walk(self.root.as_fd(), dirs, Some(mode))
            .map_err(|e| self.walk_err(e, dirs, shown))?;
        let dup = fd
            .try_clone()
            .map_err(|e| self.fs_err("open the parent of", shown, io_errno(&e)))?;
        self.parent_cache = Some((dirs.iter().map(|c| c.to_vec()).collect(), fd));
        Ok(dup)
    }

    /// Clears the way for a new entry named `name` in `parent`: anything there is removed,
    /// except a directory when a directory is wanted. Returns whether a directory was kept.
    fn clear(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        want_dir: bool,
        shown: &str,
    ) -> Result<bool, UnpackError> {
        match safefs::lstat_at(parent, name).map_err(|e| self.fs_err("inspect", shown, e))? {
            None => Ok(false),
            Some(st) if want_dir && safefs::is_dir(&st) => Ok(true),
            Some(_) => {
                self.parent_cache = None;
                safefs::remove_at(parent, name).map_err(|e| self.fs_err("replace", shown, e))?;
                Ok(false)
            }
        }
    }

    fn chown_result(
        &self,
        res: nix::Result<()>,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        match res {
            Ok(()) => Ok(()),
            Err(err @ (Errno::EINVAL | Errno::EPERM)) if self.opts.ignore_chown_errors => {
                tracing::debug!(layer = self.layer, entry = %shown, uid = meta.uid, gid = meta.gid, %err, "keeping root as owner");
                Ok(())
            }
            Err(err) => Err(UnpackError::Chown {
                layer: self.layer.to_owned(),
                entry: shown.to_owned(),
                uid: meta.uid,
                gid: meta.gid,
                source: err.into(),
            }),
        }
    }

    /// Owner of the file behind `fd`, or of `name` under it (never followed).
    fn chown(
        &self,
        fd: BorrowedFd<'_>,
        name: Option<&[u8]>,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let res = match (u32::try_from(meta.uid), u32::try_from(meta.gid)) {
            (Ok(uid), Ok(gid)) => {
                let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
                match name {
                    None => fchown(fd, uid, gid),
                    Some(n) => fchownat(
                        fd,
                        OsStr::from_bytes(n),
                        uid,
                        gid,
                        AtFlags::AT_SYMLINK_NOFOLLOW,
                    ),
                }
            }
            _ => Err(Errno::EINVAL),
        };
        self.chown_result(res, meta, shown)
    }

    fn xattrs(&self, file: &File, meta: &Meta, shown: &str) -> Result<(), UnpackError> {
        for (name, value) in &meta.xattrs {
            let policy = safefs::xattr_policy(name);
            if policy == XattrPolicy::Skip {
                tracing::debug!(layer = self.layer, entry = %shown, xattr = %name, "not carrying xattr");
                continue;
            }
            match file.set_xattr(name, value) {
                Ok(()) => {}
                Err(e)
                    if policy == XattrPolicy::ApplyUnlessDenied
                        && e.raw_os_error() == Some(libc::EPERM) =>
                {
                    tracing::debug!(layer = self.layer, entry = %shown, xattr = %name, "no privilege for xattr; skipped");
                }
                Err(source) => {
                    return Err(UnpackError::Xattr {
                        layer: self.layer.to_owned(),
                        entry: shown.to_owned(),
                        name: name.clone(),
                        dir: self.tmp.to_owned(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        comps: &[&[u8]],
        meta: &Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let name = comps[comps.len() - 1];
        let parent = self.parent(comps, shown)?;
        self.clear(parent.as_fd(), name, false, shown)?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(
            parent.as_fd(),
            OsStr::from_bytes(name),
            flags,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| self.fs_err("create", shown, e))?;
        let mut file = File::from(fd);
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(UnpackError::EntryData {
                        layer: self.layer.to_owned(),
                        entry: shown.to_owned(),
                        source,
                    });
                }
            };
            file.write_all(&buf[..n])
                .map_err(|e| self.fs_err("write", shown, io_errno(&e)))?;
            self.size += n as u64;
        }
        // chown clears setuid/setgid and file capabilities: it goes first.
        self.chown(file.as_fd(), None, meta, shown)?;
        fchmod(file.as_fd(), Mode::from_bits_truncate(meta.mode))
            .map_err(|e| self.fs_err("set the mode of", shown, e))?;
        self.xattrs(&file, meta, shown)?;
        futimens(file.as_fd(), &meta.mtime, &meta.mtime)
            .map_err(|e| self.fs_err("set the times of", shown, e))
    }

    fn dir(&mut self, comps: &[&[u8]], meta: &Meta, shown: &str) -> Result<(), UnpackError> {
        let name = comps[comps.len() - 1];
        let parent = self.parent(comps, shown)?;
        if !self.clear(parent.as_fd(), name, true, shown)? {
            mkdirat(
                parent.as_fd(),
                OsStr::from_bytes(name),
                Mode::from_bits_truncate(DIR_MODE_WHILE_UNPACKING),
            )
            .map_err(|e| self.fs_err("create", shown, e))?;
        }
        let fd =
            safefs::open_dir_at(parent.as_fd(), name).map_err(|e| self.fs_err("open", shown, e))?;
        self.dir_meta(fd, comps, meta, shown)
    }

    fn root_dir(&mut self, meta: &Meta, shown: &str) -> Result<(), UnpackError> {
        let fd = self
            .root
            .try_clone()
            .map_err(|e| self.fs_err("open", shown, io_errno(&e)))?;
        self.dir_meta(fd, &[], meta, shown)
    }

    fn dir_meta(
        &mut self,
        fd: OwnedFd,
        comps: &[&[u8]],
        meta: &Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        self.chown(fd.as_fd(), None, meta, shown)?;
        self.xattrs(&File::from(fd), meta, shown)?;
        let key = comps.iter().map(|c| c.to_vec()).collect();
        self.dirs.insert(key, (meta.mode, meta.mtime));
        Ok(())
    }

    fn symlink(
        &mut self,
        comps: &[&[u8]],
        target: &[u8],
        meta: &Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let name = OsStr::from_bytes(comps[comps.len() - 1]);
        let parent = self.parent(comps, shown)?;
        self.clear(parent.as_fd(), name.as_bytes(), false, shown)?;
        symlinkat(OsStr::from_bytes(target), parent.as_fd(), name)
            .map_err(|e| self.fs_err("create", shown, e))?;
        self.chown(parent.as_fd(), Some(name.as_bytes()), meta, shown)?;
        utimensat(
            parent.as_fd(),
            name,
            &meta.mtime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| self.fs_err("set the times of", shown, e))
    }

    fn hardlink(
        &mut self,
        comps: &[&[u8]],
        target_raw: &[u8],
        shown: &str,
    ) -> Result<(), UnpackError> {
        let target_shown = String::from_utf8_lossy(target_raw).into_owned();
        let Some(target) = normalize(target_raw) else {
            return Err(UnpackError::LinkEscape {
                layer: self.layer.to_owned(),
                entry: shown.to_owned(),
                target: target_shown,
            });
        };
        let not_extracted = || UnpackError::LinkTarget {
            layer: self.layer.to_owned(),
            entry: shown.to_owned(),
            target: target_shown.clone(),
        };
        let Some((target_name, target_dirs)) = target.split_last() else {
            return Err(not_extracted());
        };
        if target == comps {
            tracing::debug!(layer = self.layer, entry = %shown, "skipping a hard link to itself");
            return Ok(());
        }
        let target_dir = match safefs::walk(self.root.as_fd(), target_dirs, None) {
            Ok(fd) => fd,
            Err(e @ WalkError::Symlink(_)) => return Err(self.walk_err(e, target_dirs, shown)),
            Err(_) => return Err(not_extracted()),
        };
        match safefs::lstat_at(target_dir.as_fd(), target_name) {
            Ok(Some(st)) if !safefs::is_dir(&st) && !safefs::is_whiteout(&st) => {}
            _ => return Err(not_extracted()),
        }
        let name = comps[comps.len() - 1];
        let parent = self.parent(comps, shown)?;
        self.clear(parent.as_fd(), name, false, shown)?;
        linkat(
            target_dir.as_fd(),
            OsStr::from_bytes(target_name),
            parent.as_fd(),
            OsStr::from_bytes(name),
            AtFlags::empty(),
        )
        .map_err(|e| self.fs_err("create hard link", shown, e))
    }

    fn fifo(&mut self, comps: &[&[u8]], meta: &Meta, shown: &str) -> Result<(), UnpackError> {
        let name = OsStr::from_bytes(comps[comps.len() - 1]);
        let parent = self.parent(comps, shown)?;
        self.clear(parent.as_fd(), name.as_bytes(), false, shown)?;
        mkfifoat(parent.as_fd(), name, Mode::from_bits_truncate(0o600))
            .map_err(|e| self.fs_err("create", shown, e))?;
        self.chown(parent.as_fd(), Some(name.as_bytes()), meta, shown)?;
        // Following is harmless here: we just made this fifo in our private directory.
        fchmodat(
            parent.as_fd(),
            name,
            Mode::from_bits_truncate(meta.mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| self.fs_err("set the mode of", shown, e))?;
        utimensat(
            parent.as_fd(),
            name,
            &meta.mtime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| self.fs_err("set the times of", shown, e))
    }

    fn whiteout(&mut self, comps: &[&[u8]], shown: &str) -> Result<(), UnpackError> {
        let (last, dirs) = comps.split_last().expect("whiteout entries have a name");
        if *last == OPAQUE_WHITEOUT {
            let fd = self.dir_fd(dirs, shown)?;
            return File::from(fd)
                .set_xattr(OPAQUE_XATTR, b"y")
                .map_err(|source| UnpackError::Xattr {
                    layer: self.layer.to_owned(),
                    entry: shown.to_owned(),
                    name: OPAQUE_XATTR.to_owned(),
                    dir: self.tmp.to_owned(),
                    source,
                });
        }
        if last.starts_with(AUFS_META_PREFIX) {
            tracing::debug!(layer = self.layer, entry = %shown, "skipping aufs metadata");
            return Ok(());
        }
        let hidden = &last[WHITEOUT_PREFIX.len()..];
        if matches!(hidden, b"" | b"." | b"..") {
            return Err(UnpackError::BadWhiteout {
                layer: self.layer.to_owned(),
                entry: shown.to_owned(),
            });
        }
        let mut target = dirs.to_vec();
        target.push(hidden);
        self.make_whiteout(&target, shown)
    }

    fn make_whiteout(&mut self, comps: &[&[u8]], shown: &str) -> Result<(), UnpackError> {
        let name = comps[comps.len() - 1];
        let parent = self.parent(comps, shown)?;
        self.clear(parent.as_fd(), name, false, shown)?;
        mknodat(
            parent.as_fd(),
            OsStr::from_bytes(name),
            SFlag::S_IFCHR,
            Mode::empty(),
            0,
        )
        .map_err(|e| self.fs_err("create the whiteout for", shown, e))
    }

    /// Gives directories their modes and mtimes now that nothing more is written in them.
    pub(super) fn finish(&mut self) -> Result<(), UnpackError> {
        for (comps, (mode, mtime)) in &self.dirs {
            let comps: Vec<&[u8]> = comps.iter().map(Vec::as_slice).collect();
            let shown = show(&comps);
            let fd = match safefs::walk(self.root.as_fd(), &comps, None) {
                Ok(fd) => fd,
                // Replaced by a later entry of the layer: nothing left to finish.
                Err(
                    WalkError::Symlink(_) | WalkError::NotDir(_) | WalkError::Io(Errno::ENOENT),
                ) => continue,
                Err(e) => return Err(self.walk_err(e, &comps, &shown)),
            };
            fchmod(fd.as_fd(), Mode::from_bits_truncate(*mode))
                .map_err(|e| self.fs_err("set the mode of", &shown, e))?;
            futimens(fd.as_fd(), mtime, mtime)
                .map_err(|e| self.fs_err("set the times of", &shown, e))?;
        }
        Ok(())
    }
}

fn device<R: Read>(entry: &tar::Entry<'_, R>) -> Option<(u32, u32)> {
    let h = entry.header();
    Some((h.device_major().ok()??, h.device_minor().ok()??))
}

fn io_errno(e: &io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}
