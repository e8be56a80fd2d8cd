//! The vfs driver: a container's rootfs is a plain copy of its layers, applied bottom to top
//! with overlay's rules, for hosts where neither overlay nor fuse-overlayfs works.
//!
//! What the copy keeps: owners, modes (setuid included), xattrs (as unpacking filters them),
//! symlinks as links, fifos, mtimes, and hard links between files of one layer. Whiteouts
//! remove what lower layers put there; an opaque directory first empties the one below.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, RenameFlags, openat, readlinkat, renameat2};
use nix::sys::stat::{
    FchmodatFlags, FileStat, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, futimens, mkdirat,
    utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchown, fchownat, linkat, mkfifoat, symlinkat};
use xattr::FileExt;

use super::StorageError;
use super::safefs::{self, OPAQUE_XATTR, WalkError, XattrPolicy};

/// Copies `layers` (bottom-most first) into a fresh directory beside `rootfs`, then renames
/// it into place; on failure the partial copy is removed.
pub(super) fn build_rootfs(
    container_dir: &Path,
    rootfs: &Path,
    layers: &[(String, PathBuf)],
) -> Result<(), StorageError> {
    let tmp = container_dir.join(format!(".rootfs.tmp-{}", std::process::id()));
    // A leftover from a crashed attempt by a process with our pid: never a live one.
    safefs::remove_tree(&tmp).map_err(|e| StorageError::CreateDir {
        path: tmp.clone(),
        source: e.into(),
    })?;
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&tmp)
        .map_err(|source| StorageError::CreateDir {
            path: tmp.clone(),
            source,
        })?;
    let result = copy_layers(&tmp, layers).and_then(|()| {
        renameat2(
            AT_FDCWD,
            &tmp,
            AT_FDCWD,
            rootfs,
            RenameFlags::RENAME_NOREPLACE,
        )
        .map_err(|e| StorageError::CommitRootfs {
            path: rootfs.to_owned(),
            source: e.into(),
        })
    });
    if result.is_err()
        && let Err(err) = safefs::remove_tree(&tmp)
    {
        tracing::warn!(path = ?tmp, %err, "cannot remove a partial vfs rootfs");
    }
    result
}

fn copy_layers(tmp: &Path, layers: &[(String, PathBuf)]) -> Result<(), StorageError> {
    let dst = safefs::open_dir(tmp).map_err(|e| StorageError::CreateDir {
        path: tmp.to_owned(),
        source: e.into(),
    })?;
    let mut copy = Copy {
        rootfs: tmp,
        chain_id: "",
        dst_root: dst,
        dirs: BTreeMap::new(),
        links: HashMap::new(),
    };
    for (chain_id, dir) in layers {
        copy.chain_id = chain_id;
        copy.links.clear();
        let src = safefs::open_dir(dir).map_err(|e| copy.err("open", dir.clone(), e))?;
        let dst = copy
            .dst_root
            .try_clone()
            .map_err(|e| copy.err("open", tmp.to_owned(), io_errno(&e)))?;
        copy.dir(src.as_fd(), dst.as_fd(), &mut PathBuf::new())?;
    }
    copy.finish_dirs()
}

struct Copy<'a> {
    rootfs: &'a Path,
    chain_id: &'a str,
    dst_root: OwnedFd,
    /// Mode and times of every directory, from the top-most layer that has it; applied last
    /// because copying into a directory changes its mtime.
    dirs: BTreeMap<PathBuf, (u32, TimeSpec, TimeSpec)>,
    /// Files of the current layer with more than one link: (dev, ino) -> first copy.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Copy<'_> {
    fn err(&self, op: &'static str, path: PathBuf, e: Errno) -> StorageError {
        StorageError::Copy {
            chain_id: self.chain_id.to_owned(),
            op,
            path,
            source: e.into(),
        }
    }

    fn at(&self, rel: &Path) -> PathBuf {
        self.rootfs.join(rel)
    }

    fn dir(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        rel: &mut PathBuf,
    ) -> Result<(), StorageError> {
        let names = safefs::list_dir(src).map_err(|e| self.err("list", self.at(rel), e))?;
        for name in names {
            rel.push(OsStr::from_bytes(&name));
            let res = self.entry(src, dst, &name, rel);
            rel.pop();
            res?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        name: &[u8],
        rel: &mut PathBuf,
    ) -> Result<(), StorageError> {
        let Some(st) =
            safefs::lstat_at(src, name).map_err(|e| self.err("inspect", self.at(rel), e))?
        else {
            return Ok(());
        };
        let existing =
            safefs::lstat_at(dst, name).map_err(|e| self.err("inspect", self.at(rel), e))?;
        if safefs::is_whiteout(&st) {
            return safefs::remove_at(dst, name).map_err(|e| self.err("remove", self.at(rel), e));
        }
        if safefs::is_dir(&st) {
            return self.subdir(src, dst, name, &st, existing.as_ref(), rel);
        }
        if existing.is_some() {
            safefs::remove_at(dst, name).map_err(|e| self.err("replace", self.at(rel), e))?;
        }
        let key = (st.st_dev, st.st_ino);
        if st.st_nlink > 1
            && let Some(first) = self.links.get(&key)
        {
            return self.hardlink(first.clone(), dst, name, rel);
        }
        let kind = st.st_mode & SFlag::S_IFMT.bits();
        let name_os = OsStr::from_bytes(name);
        if kind == SFlag::S_IFREG.bits() {
            self.file(src, dst, name, &st, rel)?;
        } else if kind == SFlag::S_IFLNK.bits() {
            let target =
                readlinkat(src, name_os).map_err(|e| self.err("read link", self.at(rel), e))?;
            symlinkat(target.as_os_str(), dst, name_os)
                .map_err(|e| self.err("create", self.at(rel), e))?;
            self.chown(dst, Some(name), &st, rel)?;
            self.times_at(dst, name, &st, rel)?;
        } else if kind == SFlag::S_IFIFO.bits() {
            mkfifoat(dst, name_os, Mode::from_bits_truncate(0o600))
                .map_err(|e| self.err("create", self.at(rel), e))?;
            self.chown(dst, Some(name), &st, rel)?;
            // The fifo was just made in our private tree: following cannot leave it.
            fchmodat(dst, name_os, mode_of(&st), FchmodatFlags::FollowSymlink)
                .map_err(|e| self.err("set the mode of", self.at(rel), e))?;
            self.times_at(dst, name, &st, rel)?;
        } else {
            tracing::debug!(path = ?self.at(rel), mode = st.st_mode, "not copying a device or socket into a vfs rootfs");
            return Ok(());
        }
        if st.st_nlink > 1 {
            self.links.insert(key, rel.clone());
        }
        Ok(())
    }

    fn subdir(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        name: &[u8],
        st: &FileStat,
        existing: Option<&FileStat>,
        rel: &mut PathBuf,
    ) -> Result<(), StorageError> {
        let name_os = OsStr::from_bytes(name);
        let src_dir =
            safefs::open_dir_at(src, name).map_err(|e| self.err("open", self.at(rel), e))?;
        let opaque = File::from(
            src_dir
                .try_clone()
                .map_err(|e| self.err("open", self.at(rel), io_errno(&e)))?,
        )
        .get_xattr(OPAQUE_XATTR)
        .map_err(|e| self.err("read the xattrs of", self.at(rel), io_errno(&e)))?
        .is_some_and(|v| v == b"y");
        match existing {
            Some(d) if safefs::is_dir(d) => {}
            Some(_) => {
                safefs::remove_at(dst, name).map_err(|e| self.err("replace", self.at(rel), e))?;
                mkdirat(dst, name_os, Mode::from_bits_truncate(0o700))
                    .map_err(|e| self.err("create", self.at(rel), e))?;
            }
            None => {
                mkdirat(dst, name_os, Mode::from_bits_truncate(0o700))
                    .map_err(|e| self.err("create", self.at(rel), e))?;
            }
        }
        let dst_dir =
            safefs::open_dir_at(dst, name).map_err(|e| self.err("open", self.at(rel), e))?;
        if opaque && existing.is_some_and(safefs::is_dir) {
            let lower =
                safefs::list_dir(dst_dir.as_fd()).map_err(|e| self.err("list", self.at(rel), e))?;
            for child in lower {
                safefs::remove_at(dst_dir.as_fd(), &child)
                    .map_err(|e| self.err("remove", self.at(rel), e))?;
            }
        }
        self.chown(dst_dir.as_fd(), None, st, rel)?;
        self.xattrs(src_dir.as_fd(), dst_dir.as_fd(), rel)?;
        let (atime, mtime) = times(st);
        self.dirs
            .insert(rel.clone(), (st.st_mode & 0o7777, atime, mtime));
        self.dir(src_dir.as_fd(), dst_dir.as_fd(), rel)
    }

    fn file(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        name: &[u8],
        st: &FileStat,
        rel: &Path,
    ) -> Result<(), StorageError> {
        let name_os = OsStr::from_bytes(name);
        let from = openat(
            src,
            name_os,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.err("open", self.at(rel), e))?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let to = openat(dst, name_os, flags, Mode::from_bits_truncate(0o600))
            .map_err(|e| self.err("create", self.at(rel), e))?;
        let (mut from_file, mut to_file) = (File::from(from), File::from(to));
        // std uses copy_file_range here, so same-filesystem copies stay in the kernel.
        io::copy(&mut from_file, &mut to_file)
            .map_err(|e| self.err("copy", self.at(rel), io_errno(&e)))?;
        self.chown(to_file.as_fd(), None, st, rel)?;
        fchmod(to_file.as_fd(), mode_of(st))
            .map_err(|e| self.err("set the mode of", self.at(rel), e))?;
        self.xattrs(from_file.as_fd(), to_file.as_fd(), rel)?;
        let (atime, mtime) = times(st);
        futimens(to_file.as_fd(), &atime, &mtime)
            .map_err(|e| self.err("set the times of", self.at(rel), e))
    }

    fn hardlink(
        &self,
        first: PathBuf,
        dst: BorrowedFd<'_>,
        name: &[u8],
        rel: &Path,
    ) -> Result<(), StorageError> {
        let comps: Vec<&[u8]> = first.iter().map(OsStrExt::as_bytes).collect();
        let (first_name, first_dirs) = comps.split_last().expect("a recorded link has a name");
        let first_dir = safefs::walk(self.dst_root.as_fd(), first_dirs, None).map_err(|e| {
            let errno = match e {
                WalkError::Io(errno) => errno,
                WalkError::Symlink(_) | WalkError::NotDir(_) => Errno::ENOTDIR,
            };
            self.err("find the first link of", self.at(rel), errno)
        })?;
        linkat(
            first_dir.as_fd(),
            OsStr::from_bytes(first_name),
            dst,
            OsStr::from_bytes(name),
            AtFlags::empty(),
        )
        .map_err(|e| self.err("create hard link", self.at(rel), e))
    }

    fn chown(
        &self,
        fd: BorrowedFd<'_>,
        name: Option<&[u8]>,
        st: &FileStat,
        rel: &Path,
    ) -> Result<(), StorageError> {
        let (uid, gid) = (
            Some(Uid::from_raw(st.st_uid)),
            Some(Gid::from_raw(st.st_gid)),
        );
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
        .map_err(|e| self.err("set the owner of", self.at(rel), e))
    }

    fn times_at(
        &self,
        dst: BorrowedFd<'_>,
        name: &[u8],
        st: &FileStat,
        rel: &Path,
    ) -> Result<(), StorageError> {
        let (atime, mtime) = times(st);
        utimensat(
            dst,
            OsStr::from_bytes(name),
            &atime,
            &mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| self.err("set the times of", self.at(rel), e))
    }

    /// Copies the xattrs unpacking would have set; the opaque marker is not among them, it was
    /// applied by emptying the directory.
    fn xattrs(
        &self,
        from: BorrowedFd<'_>,
        to: BorrowedFd<'_>,
        rel: &Path,
    ) -> Result<(), StorageError> {
        let (from, to) = (dup_file(from), dup_file(to));
        let (from, to) = (
            from.map_err(|e| self.err("open", self.at(rel), e))?,
            to.map_err(|e| self.err("open", self.at(rel), e))?,
        );
        let names = from
            .list_xattr()
            .map_err(|e| self.err("list the xattrs of", self.at(rel), io_errno(&e)))?;
        for name in names {
            let Some(name) = name.to_str() else { continue };
            let policy = safefs::xattr_policy(name);
            if policy == XattrPolicy::Skip {
                continue;
            }
            let Some(value) = from
                .get_xattr(name)
                .map_err(|e| self.err("read the xattrs of", self.at(rel), io_errno(&e)))?
            else {
                continue;
            };
            match to.set_xattr(name, &value) {
                Ok(()) => {}
                Err(e)
                    if policy == XattrPolicy::ApplyUnlessDenied
                        && e.raw_os_error() == Some(libc::EPERM) =>
                {
                    tracing::debug!(path = ?self.at(rel), xattr = name, "no privilege for xattr; skipped");
                }
                Err(e) => return Err(self.err("set the xattrs of", self.at(rel), io_errno(&e))),
            }
        }
        Ok(())
    }

    fn finish_dirs(&self) -> Result<(), StorageError> {
        for (rel, (mode, atime, mtime)) in &self.dirs {
            let comps: Vec<&[u8]> = rel.iter().map(OsStrExt::as_bytes).collect();
            let fd = match safefs::walk(self.dst_root.as_fd(), &comps, None) {
                Ok(fd) => fd,
                // Removed or replaced by an upper layer.
                Err(
                    WalkError::Symlink(_) | WalkError::NotDir(_) | WalkError::Io(Errno::ENOENT),
                ) => continue,
                Err(WalkError::Io(e)) => return Err(self.err("open", self.at(rel), e)),
            };
            fchmod(fd.as_fd(), Mode::from_bits_truncate(*mode))
                .map_err(|e| self.err("set the mode of", self.at(rel), e))?;
            futimens(fd.as_fd(), atime, mtime)
                .map_err(|e| self.err("set the times of", self.at(rel), e))?;
        }
        Ok(())
    }
}

fn dup_file(fd: BorrowedFd<'_>) -> Result<File, Errno> {
    fd.try_clone_to_owned()
        .map(File::from)
        .map_err(|e| io_errno(&e))
}

fn mode_of(st: &FileStat) -> Mode {
    Mode::from_bits_truncate(st.st_mode & 0o7777)
}

fn times(st: &FileStat) -> (TimeSpec, TimeSpec) {
    (
        TimeSpec::new(st.st_atime, st.st_atime_nsec),
        TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
    )
}

fn io_errno(e: &io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}
