//! The syscall seam: namespace and mount operations go through [`Syscall`] so the order of
//! the namespace steps and of the mount sequence is unit-tested with [`tests::Recorder`]
//! (test builds only, chosen explicitly by the test) while [`Nix`] does the real work.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use super::RuntimeError;

/// What exists at a path (without following a final symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Missing,
    File,
    Dir,
    Symlink,
}

pub(crate) trait Syscall {
    /// unshare(2): the calling process (single-threaded) moves into new namespaces.
    fn unshare(&self, flags: CloneFlags) -> io::Result<()>;
    /// setns(2): the calling process joins the namespace `ns` (an open /proc/PID/ns file)
    /// of type `flag`.
    fn setns(&self, ns: BorrowedFd<'_>, flag: CloneFlags) -> io::Result<()>;
    /// The hostname of the calling process's uts namespace.
    fn sethostname(&self, name: &str) -> io::Result<()>;
    /// Brings up `lo` in the calling process's network namespace (the error names the step
    /// that failed).
    fn loopback_up(&self) -> Result<(), RuntimeError>;
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
    /// Makes the mount at `path` and every mount below it read-only in one step
    /// (mount_setattr with AT_RECURSIVE; Linux 5.12+).
    fn readonly_recursive(&self, path: &Path) -> io::Result<()>;
    /// The mount points at or below `path` in this mount namespace, parents first.
    fn mounts_under(&self, path: &Path) -> io::Result<Vec<PathBuf>>;
}

/// `struct mount_attr` of mount_setattr(2) (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// Undoes the octal escapes (`\040` for a space) of a mountinfo path.
fn unescape_mount_path(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The mount points of /proc/self/mountinfo content at or below `path`, in file order
/// (which lists a parent before what is mounted on it).
pub(crate) fn parse_mounts_under(mountinfo: &str, path: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(path))
        .collect()
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
    fn unshare(&self, flags: CloneFlags) -> io::Result<()> {
        nix::sched::unshare(flags).map_err(io::Error::from)
    }

    fn setns(&self, ns: BorrowedFd<'_>, flag: CloneFlags) -> io::Result<()> {
        nix::sched::setns(ns, flag).map_err(io::Error::from)
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        nix::unistd::sethostname(name).map_err(io::Error::from)
    }

    fn loopback_up(&self) -> Result<(), RuntimeError> {
        super::loopback::loopback_up()
    }

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
        use std::io::{Read, Seek};
        // The daemon keeps the stderr it inherits for its whole life and fuse-overlayfs 1.x
        // warns there on every mount ("unknown argument ignored: lazytime"): an anonymous
        // file takes it, read back only when the mount fails.
        let memfd = nix::sys::memfd::memfd_create(
            c"fuse-overlayfs",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        let mut log = std::fs::File::from(memfd);
        let status = std::process::Command::new("fuse-overlayfs")
            .arg("-o")
            .arg(options)
            .arg(target)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log.try_clone()?)
            .status()?;
        if status.success() {
            return Ok(());
        }
        let mut stderr = String::new();
        log.rewind()?;
        let _ = log.take(4096).read_to_string(&mut stderr);
        Err(io::Error::other(format!(
            "fuse-overlayfs exited with {status}: {}",
            stderr.trim()
        )))
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

    fn readonly_recursive(&self, path: &Path) -> io::Result<()> {
        let p = cstring(path)?;
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        // SAFETY: `p` is NUL-terminated and `attr` is a mount_attr of the size passed; both
        // outlive the call, which only reads them.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                p.as_ptr(),
                (libc::AT_RECURSIVE | libc::AT_SYMLINK_NOFOLLOW) as libc::c_uint,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn mounts_under(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let info = std::fs::read_to_string("/proc/self/mountinfo")?;
        Ok(parse_mounts_under(&info, path))
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
        /// What [`Syscall::mounts_under`] answers.
        pub submounts: Vec<PathBuf>,
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

    /// `CLONE_NEWNS | CLONE_NEWUTS`: the names of `flags`, as the recorder writes them.
    pub fn clone_names(flags: CloneFlags) -> String {
        let names: Vec<&str> = flags.iter_names().map(|(name, _)| name).collect();
        names.join(" | ")
    }

    impl Syscall for Recorder {
        fn unshare(&self, flags: CloneFlags) -> io::Result<()> {
            self.record(format!("unshare {}", clone_names(flags)))
        }
        fn setns(&self, _ns: BorrowedFd<'_>, flag: CloneFlags) -> io::Result<()> {
            self.record(format!("setns {}", clone_names(flag)))
        }
        fn sethostname(&self, name: &str) -> io::Result<()> {
            self.record(format!("sethostname {name}"))
        }
        fn loopback_up(&self) -> Result<(), RuntimeError> {
            self.record("loopback_up".into())
                .map_err(|source| RuntimeError::Setup {
                    step: "bring up".into(),
                    path: "lo".into(),
                    source,
                })
        }
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
        fn readonly_recursive(&self, path: &Path) -> io::Result<()> {
            self.record(format!("mount_setattr {} ro recursive", path.display()))
        }
        fn mounts_under(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
            self.record(format!("mounts_under {}", path.display()))?;
            Ok(self.submounts.clone())
        }
    }

    #[test]
    fn mountinfo_lists_the_tree_below_a_path_with_escapes_undone() {
        let info = "\
22 1 0:21 / / rw - ext4 /dev/vda rw
23 22 0:22 / /sys rw,nosuid - sysfs sysfs rw
24 23 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
25 23 0:24 / /sys/kernel/my\\040dir rw - tmpfs tmpfs rw
26 22 0:25 / /sysroot rw - tmpfs tmpfs rw
";
        assert_eq!(
            parse_mounts_under(info, Path::new("/sys")),
            [
                PathBuf::from("/sys"),
                "/sys/fs/cgroup".into(),
                "/sys/kernel/my dir".into()
            ]
        );
        assert!(parse_mounts_under(info, Path::new("/nowhere")).is_empty());
    }
}
