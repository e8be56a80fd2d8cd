//! Descriptor-relative file operations that never follow a symlink.
//!
//! Layer contents are hostile input: a layer may carry `lib -> /usr/lib` and then `lib/x`, and
//! a path-based write would land on the host. Everything that writes into a layer or a rootfs
//! therefore resolves parents one component at a time with `O_NOFOLLOW | O_DIRECTORY` from a
//! directory descriptor, and operates on the last component relative to its parent's fd.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

/// The xattr that marks an opaque directory in a layer (overlay mounted with `userxattr`).
pub const OPAQUE_XATTR: &str = "user.overlay.opaque";

/// Why resolving the parents of a path failed, with the index of the component at fault.
#[derive(Debug)]
pub enum WalkError {
    /// The component is a symlink: following it could leave the tree.
    Symlink(usize),
    /// The component exists and is neither a directory nor a symlink.
    NotDir(usize),
    /// Opening or creating the component failed.
    Io(Errno),
}

/// Opens an existing directory `name` under `dir`, refusing a symlink.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<OwnedFd> {
    openat(
        dir,
        OsStr::from_bytes(name),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Opens a directory by path (the last component must not be a symlink).
pub fn open_dir(path: &Path) -> nix::Result<OwnedFd> {
    openat(
        nix::fcntl::AT_FDCWD,
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// `lstat` relative to a directory; `None` when nothing is there.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<Option<FileStat>> {
    match fstatat(dir, OsStr::from_bytes(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn is_dir(st: &FileStat) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits()
}

pub fn is_symlink(st: &FileStat) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFLNK.bits()
}

/// A character device 0/0: the overlay whiteout.
pub fn is_whiteout(st: &FileStat) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFCHR.bits() && st.st_rdev == 0
}

/// Walks `comps` below `root` without following symlinks and returns the last directory.
/// With `create`, missing directories are made with that mode (owned by the caller).
pub fn walk(
    root: BorrowedFd<'_>,
    comps: &[&[u8]],
    create: Option<Mode>,
) -> Result<OwnedFd, WalkError> {
    let mut cur = root
        .try_clone_to_owned()
        .map_err(|e| WalkError::Io(errno_of(&e)))?;
    for (i, comp) in comps.iter().enumerate() {
        let next = match open_dir_at(cur.as_fd(), comp) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if create.is_some() => {
                let mode = create.unwrap_or(Mode::empty());
                match nix::sys::stat::mkdirat(cur.as_fd(), OsStr::from_bytes(comp), mode) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(WalkError::Io(e)),
                }
                open_dir_at(cur.as_fd(), comp).map_err(|e| classify(cur.as_fd(), comp, i, e))?
            }
            Err(e) => return Err(classify(cur.as_fd(), comp, i, e)),
        };
        cur = next;
    }
    Ok(cur)
}

fn classify(dir: BorrowedFd<'_>, comp: &[u8], i: usize, err: Errno) -> WalkError {
    if matches!(err, Errno::ELOOP | Errno::ENOTDIR) {
        match lstat_at(dir, comp) {
            Ok(Some(st)) if is_symlink(&st) => return WalkError::Symlink(i),
            Ok(Some(st)) if !is_dir(&st) => return WalkError::NotDir(i),
            _ => {}
        }
    }
    WalkError::Io(err)
}

fn errno_of(e: &io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Removes `name` under `dir`, recursively when it is a directory. Directories are made
/// writable and searchable first so trees with 0500 directories go away too. Symlinks are
/// removed, never followed; a directory on another filesystem (a rootfs or volume still
/// mounted) is not entered and fails the removal with EBUSY. Missing is fine.
pub fn remove_at(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if !is_dir(&st) {
        return match unlinkat(dir, OsStr::from_bytes(name), UnlinkatFlags::NoRemoveDir) {
            Err(Errno::ENOENT) => Ok(()),
            other => other,
        };
    }
    if st.st_dev != nix::sys::stat::fstat(dir)?.st_dev {
        return Err(Errno::EBUSY);
    }
    // Best effort: root in the namespace can usually bypass modes anyway, and when it cannot
    // the unlink below reports the real error.
    let _ = nix::sys::stat::fchmodat(
        dir,
        OsStr::from_bytes(name),
        Mode::from_bits_truncate(0o700),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    );
    let child = open_dir_at(dir, name)?;
    let _ = fchmod(child.as_fd(), Mode::from_bits_truncate(0o700));
    for entry in list_dir(child.as_fd())? {
        remove_at(child.as_fd(), &entry)?;
    }
    match unlinkat(dir, OsStr::from_bytes(name), UnlinkatFlags::RemoveDir) {
        Err(Errno::ENOENT) => Ok(()),
        other => other,
    }
}

/// Removes a whole tree by path (the path itself must not be a symlink to follow: a symlink
/// there is removed as a link). Missing is fine.
pub fn remove_tree(path: &Path) -> nix::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name() else {
        return Err(Errno::EINVAL);
    };
    let parent_fd = match open_dir(parent) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_at(parent_fd.as_fd(), name.as_bytes())
}

/// The names in a directory, without `.` and `..`; the listing is read fully and closed so
/// deep recursion holds only one descriptor per level.
pub fn list_dir(dir: BorrowedFd<'_>) -> nix::Result<Vec<Vec<u8>>> {
    let own = open_dir_at(dir, b".")?;
    let mut d = Dir::from_fd(own)?;
    let mut names = Vec::new();
    for entry in d.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// What to do with an xattr found in a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrPolicy {
    /// Apply; failure is an error.
    Apply,
    /// Apply, but EPERM (no privilege, e.g. `trusted.*` in a user namespace) is skipped.
    ApplyUnlessDenied,
    /// Not carried: overlay's and fuse-overlayfs's own attributes (they would change how the
    /// layer is read) and namespaces we have no use for.
    Skip,
}

pub fn xattr_policy(name: &str) -> XattrPolicy {
    if name.starts_with("user.overlay.")
        || name.starts_with("trusted.overlay.")
        || name.starts_with("user.fuseoverlayfs.")
    {
        XattrPolicy::Skip
    } else if name.starts_with("user.") || name == "security.capability" {
        XattrPolicy::Apply
    } else if name.starts_with("trusted.") {
        XattrPolicy::ApplyUnlessDenied
    } else {
        XattrPolicy::Skip
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn walk_refuses_symlink_and_creates_missing() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("a")).unwrap();
        symlink("/etc", tmp.path().join("a/link")).unwrap();
        std::fs::write(tmp.path().join("a/file"), b"").unwrap();
        let root = open_dir(tmp.path()).unwrap();

        let err = walk(
            root.as_fd(),
            &[b"a", b"link", b"x"],
            Some(Mode::from_bits_truncate(0o755)),
        );
        assert!(matches!(err, Err(WalkError::Symlink(1))), "{err:?}");
        let err = walk(root.as_fd(), &[b"a", b"file"], None);
        assert!(matches!(err, Err(WalkError::NotDir(1))), "{err:?}");
        let err = walk(root.as_fd(), &[b"a", b"missing"], None);
        assert!(matches!(err, Err(WalkError::Io(Errno::ENOENT))), "{err:?}");

        walk(
            root.as_fd(),
            &[b"a", b"new", b"deeper"],
            Some(Mode::from_bits_truncate(0o755)),
        )
        .unwrap();
        assert!(tmp.path().join("a/new/deeper").is_dir());
        assert!(!Path::new("/etc/x").exists());
    }

    #[test]
    fn remove_tree_handles_read_only_dirs_and_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), b"x").unwrap();
        let top = tmp.path().join("top");
        std::fs::create_dir_all(top.join("ro/inner")).unwrap();
        std::fs::write(top.join("ro/inner/f"), b"x").unwrap();
        symlink(outside.path(), top.join("ro/out")).unwrap();
        std::fs::set_permissions(top.join("ro/inner"), std::fs::Permissions::from_mode(0o500))
            .unwrap();
        std::fs::set_permissions(top.join("ro"), std::fs::Permissions::from_mode(0o000)).unwrap();

        remove_tree(&top).unwrap();
        assert!(!top.exists());
        assert!(
            outside.path().join("keep").exists(),
            "followed a symlink while removing"
        );
        remove_tree(&top).unwrap();
    }

    #[test]
    fn xattr_policy_keeps_overlay_attributes_out() {
        assert_eq!(xattr_policy("user.overlay.opaque"), XattrPolicy::Skip);
        assert_eq!(xattr_policy("trusted.overlay.redirect"), XattrPolicy::Skip);
        assert_eq!(xattr_policy("user.fuseoverlayfs.opaque"), XattrPolicy::Skip);
        assert_eq!(xattr_policy("user.mime"), XattrPolicy::Apply);
        assert_eq!(xattr_policy("security.capability"), XattrPolicy::Apply);
        assert_eq!(xattr_policy("trusted.foo"), XattrPolicy::ApplyUnlessDenied);
        assert_eq!(xattr_policy("security.selinux"), XattrPolicy::Skip);
    }
}
