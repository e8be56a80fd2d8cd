//! The mount sequence of the container process: the rootfs in the mount namespace its daemon
//! lives in ([`mount_root`]), then in the container's own one ([`setup`]) /proc, /dev, /sys,
//! pivot_root, the engine's /etc files, Docker's masked and read-only paths, the terminal's
//! /dev/console, then the read-only root.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use super::sys::{Kind, Syscall};
use super::{ContainerSpec, Rootfs, RuntimeError};

/// Docker's default masked paths: files get /dev/null bound over them, dirs an empty ro tmpfs.
pub(crate) const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's default read-only paths: bound onto themselves and remounted read-only.
pub(crate) const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Host device nodes bound into the container's /dev (rootless cannot mknod).
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Facts about the namespaces the mount sequence depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MountOptions {
    /// The container has its own network namespace, so a fresh sysfs may be mounted.
    pub private_net: bool,
    /// Container gid 5 (tty) is mapped, so devpts may be given `gid=5`.
    pub tty_gid_mapped: bool,
}

fn setup_err(step: &str, path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let (step, path) = (step.to_string(), path.to_path_buf());
    move |source| RuntimeError::Setup { step, path, source }
}

/// `lowerdir=A:B,upperdir=U,workdir=W`; paths holding the separators are refused.
pub(crate) fn overlay_options(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> Result<String, RuntimeError> {
    for p in lowers.iter().map(PathBuf::as_path).chain([upper, work]) {
        let s = p.to_string_lossy();
        if s.contains([':', ',', '\\']) {
            return Err(RuntimeError::UnsafeOverlayPath {
                path: p.to_path_buf(),
            });
        }
    }
    let lower: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    Ok(format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    ))
}

/// Refuses a mount target that the image made a symlink: it could point outside the rootfs.
fn ensure_dir(sys: &dyn Syscall, path: &Path) -> Result<(), RuntimeError> {
    if sys.kind(path) == Kind::Symlink {
        return Err(setup_err("mount over the symlink", path)(
            std::io::Error::from_raw_os_error(libc::ELOOP),
        ));
    }
    sys.mkdir_all(path, 0o755)
        .map_err(setup_err("create the directory", path))
}

fn mount_rootfs(sys: &dyn Syscall, spec: &ContainerSpec) -> Result<(), RuntimeError> {
    let target = spec.mount_point.as_path();
    let none: Option<&Path> = None;
    match &spec.rootfs {
        Rootfs::Overlay {
            lowers,
            upper,
            work,
        } => {
            // userxattr: overlay keeps its metadata in user.* xattrs, the only ones an
            // unprivileged mounter may write.
            let data = format!("{},userxattr", overlay_options(lowers, upper, work)?);
            sys.mount(
                Some(Path::new("overlay")),
                target,
                Some("overlay"),
                MsFlags::empty(),
                Some(&data),
            )
            .map_err(setup_err("mount the overlay rootfs on", target))?;
        }
        Rootfs::FuseOverlay {
            lowers,
            upper,
            work,
        } => {
            let data = overlay_options(lowers, upper, work)?;
            sys.fuse_overlayfs(&data, target)
                .map_err(setup_err("run fuse-overlayfs on", target))?;
        }
        Rootfs::Dir(dir) => {
            sys.mount(
                Some(dir),
                target,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .map_err(setup_err("bind the rootfs dir on", target))?;
        }
    }
    // pivot_root refuses a shared new root.
    sys.mount(none, target, None, MsFlags::MS_PRIVATE, None)
        .map_err(setup_err("make private", target))
}

fn mount_dev(sys: &dyn Syscall, root: &Path, opts: MountOptions) -> Result<(), RuntimeError> {
    let dev = root.join("dev");
    ensure_dir(sys, &dev)?;
    sys.mount(
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .map_err(setup_err("mount tmpfs on", &dev))?;
    for name in DEVICES {
        let target = dev.join(name);
        sys.touch(&target).map_err(setup_err("create", &target))?;
        let host = Path::new("/dev").join(name);
        sys.mount(Some(&host), &target, None, MsFlags::MS_BIND, None)
            .map_err(setup_err("bind the host device on", &target))?;
    }
    let pts = dev.join("pts");
    sys.mkdir_all(&pts, 0o755)
        .map_err(setup_err("create the directory", &pts))?;
    let gid = if opts.tty_gid_mapped { ",gid=5" } else { "" };
    sys.mount(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(&format!("newinstance,ptmxmode=0666,mode=0620{gid}")),
    )
    .map_err(setup_err("mount devpts on", &pts))?;
    let shm = dev.join("shm");
    sys.mkdir_all(&shm, 0o1777)
        .map_err(setup_err("create the directory", &shm))?;
    sys.mount(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )
    .map_err(setup_err("mount tmpfs on", &shm))?;
    let mqueue = dev.join("mqueue");
    sys.mkdir_all(&mqueue, 0o755)
        .map_err(setup_err("create the directory", &mqueue))?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if let Err(err) = sys.mount(
        Some(Path::new("mqueue")),
        &mqueue,
        Some("mqueue"),
        flags,
        None,
    ) {
        tracing::debug!(%err, "no /dev/mqueue in the container");
    }
    for (name, target) in DEV_LINKS {
        let link = dev.join(name);
        sys.symlink(Path::new(target), &link)
            .map_err(setup_err("create the symlink", &link))?;
    }
    Ok(())
}

fn mount_sys(sys: &dyn Syscall, root: &Path, opts: MountOptions) -> Result<(), RuntimeError> {
    let target = root.join("sys");
    ensure_dir(sys, &target)?;
    let ro = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if opts.private_net {
        // sysfs may only be mounted by the owner of the current network namespace.
        match sys.mount(Some(Path::new("sysfs")), &target, Some("sysfs"), ro, None) {
            Ok(()) => return Ok(()),
            Err(err) => tracing::debug!(%err, "fresh sysfs refused, binding the host's"),
        }
    }
    sys.mount(
        Some(Path::new("/sys")),
        &target,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .map_err(setup_err("bind the host /sys on", &target))?;
    readonly_tree(sys, &target)
}

/// Makes `target` and every mount below it read-only: the host's /sys carries submounts
/// (cgroup, securityfs, debugfs...) that a bind remount of the top alone leaves writable.
fn readonly_tree(sys: &dyn Syscall, target: &Path) -> Result<(), RuntimeError> {
    let err = match sys.readonly_recursive(target) {
        Ok(()) => return Ok(()),
        Err(err) => err,
    };
    tracing::debug!(%err, ?target, "mount_setattr refused, remounting each mount read-only");
    let mounts = sys
        .mounts_under(target)
        .map_err(setup_err("list the mounts under", target))?;
    for mount in &mounts {
        match remount_readonly(sys, mount) {
            Ok(()) => {}
            // A mount below a directory this user cannot search stays out of the container's
            // reach as well.
            Err(RuntimeError::Setup { source, .. })
                if mount != target
                    && matches!(source.raw_os_error(), Some(libc::EACCES | libc::ENOENT)) =>
            {
                tracing::debug!(err = %source, ?mount, "submount out of reach, left as is");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Bind remount read-only, keeping the flags the kernel locked on the mount.
fn remount_readonly(sys: &dyn Syscall, target: &Path) -> Result<(), RuntimeError> {
    let none: Option<&Path> = None;
    let locked = sys
        .locked_flags(target)
        .map_err(setup_err("statvfs", target))?;
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked;
    sys.mount(none, target, None, flags, None)
        .map_err(setup_err("remount read-only", target))
}

fn pivot(sys: &dyn Syscall, root: &Path) -> Result<(), RuntimeError> {
    sys.chdir(root).map_err(setup_err("chdir to", root))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching "." then
    // drops it without needing a put_old directory inside the image.
    sys.pivot_root(Path::new("."), Path::new("."))
        .map_err(setup_err("pivot_root to", root))?;
    sys.umount2(Path::new("."), MntFlags::MNT_DETACH)
        .map_err(setup_err("detach the old root", root))?;
    sys.chdir(Path::new("/"))
        .map_err(setup_err("chdir to", Path::new("/")))
}

/// Attaches each `(container path, detached mount)` over the path, creating an empty file
/// there first when nothing exists. Runs after pivot_root, so a symlink in the image resolves
/// inside the container; the mounts were cloned from the host's files before the pivot.
fn bind_files(sys: &dyn Syscall, files: &[(String, OwnedFd)]) -> Result<(), RuntimeError> {
    for (inside, source) in files {
        let target = Path::new(inside);
        match sys.kind(target) {
            Kind::Missing => sys.touch(target).map_err(setup_err("create", target))?,
            Kind::Dir => {
                return Err(setup_err("bind a file over the directory", target)(
                    std::io::Error::from_raw_os_error(libc::EISDIR),
                ));
            }
            Kind::File | Kind::Symlink => {}
        }
        sys.move_mount(source.as_fd(), target)
            .map_err(setup_err("bind the engine's file on", target))?;
    }
    Ok(())
}

fn mask_paths(sys: &dyn Syscall) -> Result<(), RuntimeError> {
    for p in MASKED_PATHS.iter().map(Path::new) {
        match sys.kind(p) {
            Kind::File => sys
                .mount(
                    Some(Path::new("/dev/null")),
                    p,
                    None,
                    MsFlags::MS_BIND,
                    None,
                )
                .map_err(setup_err("mask", p))?,
            Kind::Dir => sys
                .mount(
                    Some(Path::new("tmpfs")),
                    p,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    None,
                )
                .map_err(setup_err("mask", p))?,
            Kind::Missing | Kind::Symlink => {}
        }
    }
    for p in READONLY_PATHS.iter().map(Path::new) {
        if sys.kind(p) == Kind::Missing {
            continue;
        }
        sys.mount(Some(p), p, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
            .map_err(setup_err("bind onto itself", p))?;
        remount_readonly(sys, p)?;
    }
    Ok(())
}

/// The first step, run in the mount namespace that the rootfs's daemon (fuse-overlayfs)
/// lives in: keeps mounts from propagating to the host and mounts the rootfs at the mount
/// point. The container then takes a mount namespace of its own for [`setup`], so that its
/// pivot_root does not move the daemon's root into the mount the daemon serves (a deadlock
/// on the first write).
pub(crate) fn mount_root(sys: &dyn Syscall, spec: &ContainerSpec) -> Result<(), RuntimeError> {
    let none: Option<&Path> = None;
    sys.mount(
        none,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None,
    )
    .map_err(setup_err("make slave", Path::new("/")))?;
    mount_rootfs(sys, spec)
}

/// Undoes [`mount_root`] once the container is gone, in the namespace that mounted it. For
/// fuse-overlayfs this releases the last mount of the file system, so the daemon exits.
pub(crate) fn release_root(sys: &dyn Syscall, spec: &ContainerSpec) -> Result<(), RuntimeError> {
    let target = spec.mount_point.as_path();
    sys.umount2(target, MntFlags::MNT_DETACH)
        .map_err(setup_err("unmount the rootfs from", target))
}

/// Provides /dev/console as Docker does with `-t`: the container's pty slave bound over it.
/// Runs after pivot_root.
pub(crate) fn bind_console(sys: &dyn Syscall, slave: &Path) -> Result<(), RuntimeError> {
    let console = Path::new("/dev/console");
    sys.touch(console).map_err(setup_err("create", console))?;
    sys.mount(Some(slave), console, None, MsFlags::MS_BIND, None)
        .map_err(setup_err("bind the pty over", console))
}

/// The rest of the sequence, after [`mount_root`], in the container's own mount namespace.
/// `before_readonly` runs after the pivot, with the container's files visible at /, while
/// the root is still writable (user lookup, the working directory, the terminal).
pub(crate) fn setup(
    sys: &dyn Syscall,
    spec: &ContainerSpec,
    opts: MountOptions,
    etc_sources: &[(String, OwnedFd)],
    before_readonly: impl FnOnce() -> Result<(), RuntimeError>,
) -> Result<(), RuntimeError> {
    let root = spec.mount_point.as_path();
    let proc = root.join("proc");
    ensure_dir(sys, &proc)?;
    sys.mount(
        Some(Path::new("proc")),
        &proc,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
        None,
    )
    .map_err(setup_err("mount proc on", &proc))?;
    mount_dev(sys, root, opts)?;
    mount_sys(sys, root, opts)?;
    pivot(sys, root)?;
    bind_files(sys, etc_sources)?;
    mask_paths(sys)?;
    before_readonly()?;
    if spec.readonly_rootfs {
        remount_readonly(sys, Path::new("/"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
