//! The syscall seam: mount-namespace operations go through [`Syscall`] so the order of the
//! mount sequence is unit-tested with [`tests::Recorder`] (test builds only, chosen
//! explicitly by the test) while [`Nix`] does the real work.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

/// What exists at a path (without following a final symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Missing,
    File,
    Dir,
    Symlink,
}

pub(crate) trait Syscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()>;
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()>;
    fn chdir(&self, path: &Path) -> io::Result<()>;
    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// Creates an empty file (and its parents) when nothing exists at `path`.
    fn touch(&self, path: &Path) -> io::Result<()>;
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    fn kind(&self, path: &Path) -> Kind;
    /// The mount flags (nosuid, nodev, noexec, atime) of the mount holding `path`: a bind
    /// remount inside a user namespace must keep them or the kernel refuses it.
    fn locked_flags(&self, path: &Path) -> io::Result<MsFlags>;
    /// Runs `fuse-overlayfs -o OPTIONS TARGET` (it daemonises and keeps serving the mount).
    fn fuse_overlayfs(&self, options: &str, target: &Path) -> io::Result<()>;
    /// Attaches a detached mount (from [`clone_mount`]) at `target`.
    fn move_mount(&self, mount: BorrowedFd<'_>, target: &Path) -> io::Result<()>;
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// A detached bind mount of `source` (open_tree with OPEN_TREE_CLONE), held by a descriptor:
/// it survives pivot_root, unlike a path on the host, and is attached with `move_mount`.
pub(crate) fn clone_mount(source: &Path) -> io::Result<OwnedFd> {
    let path = cstring(source)?;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: open_tree reads the NUL-terminated `path`, valid for the call; the result is a
    // new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The real implementation over nix and std.
pub(crate) struct Nix;

impl Syscall for Nix {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data).map_err(io::Error::from)
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
        nix::mount::umount2(target, flags).map_err(io::Error::from)
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        nix::unistd::pivot_root(new_root, put_old).map_err(io::Error::from)
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        nix::unistd::chdir(path).map_err(io::Error::from)
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
    }

    fn touch(&self, path: &Path) -> io::Result<()> {
        if let Some(parent) = path.parent() {
            self.mkdir_all(parent, 0o755)?;
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn kind(&self, path: &Path) -> Kind {
        match std::fs::symlink_metadata(path) {
            Err(_) => Kind::Missing,
            Ok(m) if m.file_type().is_symlink() => Kind::Symlink,
            Ok(m) if m.is_dir() => Kind::Dir,
            Ok(_) => Kind::File,
        }
    }

    fn locked_flags(&self, path: &Path) -> io::Result<MsFlags> {
        use nix::sys::statvfs::FsFlags;
        let flags = nix::sys::statvfs::statvfs(path)
            .map_err(io::Error::from)?
            .flags();
        let pairs = [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ];
        Ok(pairs
            .iter()
            .filter(|(st, _)| flags.contains(*st))
            .fold(MsFlags::empty(), |a, (_, ms)| a | *ms))
    }

    fn fuse_overlayfs(&self, options: &str, target: &Path) -> io::Result<()> {
        let status = std::process::Command::new("fuse-overlayfs")
            .arg("-o")
            .arg(options)
            .arg(target)
            .stdin(std::process::Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "fuse-overlayfs exited with {status}"
            )))
        }
    }

    fn move_mount(&self, mount: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
        let to = cstring(target)?;
        let empty = c"";
        // SAFETY: both strings are NUL-terminated and outlive the call; `mount` is an open fd.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                mount.as_raw_fd(),
                empty.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::path::PathBuf;

    /// Records every call as one line; `kinds` answers [`Syscall::kind`] (default Missing),
    /// `fail` makes the call whose line starts with the given prefix fail with EPERM.
    #[derive(Default)]
    pub(crate) struct Recorder {
        pub calls: RefCell<Vec<String>>,
        pub kinds: HashMap<PathBuf, Kind>,
        pub fail: Vec<String>,
    }

    impl Recorder {
        fn record(&self, line: String) -> io::Result<()> {
            let failed = self.fail.iter().any(|f| line.starts_with(f.as_str()));
            self.calls.borrow_mut().push(line);
            if failed {
                Err(io::Error::from_raw_os_error(libc::EPERM))
            } else {
                Ok(())
            }
        }

        pub fn lines(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }

        /// Index of the first recorded line equal to `prefix` or starting with it and a
        /// space; panics when absent.
        pub fn pos(&self, prefix: &str) -> usize {
            self.calls
                .borrow()
                .iter()
                .position(|l| {
                    l == prefix
                        || l.strip_prefix(prefix)
                            .is_some_and(|rest| rest.starts_with(' '))
                })
                .unwrap_or_else(|| {
                    panic!(
                        "no call starting with {prefix:?} in {:#?}",
                        self.calls.borrow()
                    )
                })
        }
    }

    impl Syscall for Recorder {
        fn mount(
            &self,
            source: Option<&Path>,
            target: &Path,
            fstype: Option<&str>,
            flags: MsFlags,
            data: Option<&str>,
        ) -> io::Result<()> {
            let names: Vec<&str> = flags.iter_names().map(|(name, _)| name).collect();
            let flags = if names.is_empty() {
                "-".to_string()
            } else {
                names.join(" | ")
            };
            self.record(format!(
                "mount {} {} {} {flags} {}",
                source.map_or("-".into(), |s| s.display().to_string()),
                target.display(),
                fstype.unwrap_or("-"),
                data.unwrap_or("-")
            ))
        }
        fn umount2(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
            let names: Vec<&str> = flags.iter_names().map(|(n, _)| n).collect();
            self.record(format!(
                "umount2 {} {}",
                target.display(),
                names.join(" | ")
            ))
        }
        fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
            self.record(format!(
                "pivot_root {} {}",
                new_root.display(),
                put_old.display()
            ))
        }
        fn chdir(&self, path: &Path) -> io::Result<()> {
            self.record(format!("chdir {}", path.display()))
        }
        fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()> {
            self.record(format!("mkdir {} {mode:o}", path.display()))
        }
        fn touch(&self, path: &Path) -> io::Result<()> {
            self.record(format!("touch {}", path.display()))
        }
        fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
            self.record(format!("symlink {} {}", link.display(), target.display()))
        }
        fn kind(&self, path: &Path) -> Kind {
            self.kinds.get(path).copied().unwrap_or(Kind::Missing)
        }
        fn locked_flags(&self, _path: &Path) -> io::Result<MsFlags> {
            Ok(MsFlags::MS_NOSUID | MsFlags::MS_NODEV)
        }
        fn fuse_overlayfs(&self, options: &str, target: &Path) -> io::Result<()> {
            self.record(format!("fuse-overlayfs {options} {}", target.display()))
        }
        fn move_mount(&self, _mount: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
            self.record(format!("move_mount {}", target.display()))
        }
    }
}
