//! The container's pid 1 before execve: its own mount namespace, mounts, pivot, terminal,
//! hostname, `lo`, user, capabilities, no_new_privs, seccomp, exec. Runs in the grandchild
//! (see `process.rs`); the last steps ([`finish`]) are shared with `exec`.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::stat::Mode;

use super::mounts::{self, MountOptions};
use super::sys::{Nix, Syscall, clone_mount};
use super::user::{self, ExecUser};
use super::{
    ContainerSpec, IdMapping, NetworkMode, RuntimeError, command, privileges, seccomp, tty,
};

fn process_err(step: &str) -> impl FnOnce(nix::Error) -> RuntimeError {
    let step = step.to_string();
    move |e| RuntimeError::Process {
        step,
        source: e.into(),
    }
}

/// Makes `slave` the controlling terminal and stdio of this (new) session.
pub(crate) fn attach_terminal(slave: OwnedFd) -> Result<(), RuntimeError> {
    nix::unistd::setsid().map_err(process_err("start a session"))?;
    // SAFETY: TIOCSCTTY takes an int argument, no pointer; slave is an open pty.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(process_err("make the pty the controlling terminal")(
            nix::Error::last(),
        ));
    }
    for target in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors, which this process owns; slave is open.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(process_err("attach the pty to stdio")(nix::Error::last()));
        }
    }
    Ok(())
}

/// Points each of `targets` (standard descriptors) at /dev/null.
pub(crate) fn dev_null_onto(targets: &[i32]) -> Result<(), RuntimeError> {
    let fd = nix::fcntl::open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(process_err("open /dev/null for stdio"))?;
    for &target in targets {
        // SAFETY: dup2 onto a standard descriptor, which this process owns; fd is open. fd
        // itself is closed on drop while the target keeps the duplicate.
        if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
            return Err(process_err("redirect stdio to /dev/null")(
                nix::Error::last(),
            ));
        }
    }
    Ok(())
}

/// Marks every descriptor from 3 up close-on-exec so only stdio reaches the container.
fn cloexec_from_3() {
    // SAFETY: close_range takes no pointers; with CLOSE_RANGE_CLOEXEC it closes nothing now.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return;
    }
    // Kernels before 5.11: walk /proc/self/fd instead.
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds.into_iter().filter(|fd| *fd > 2) {
        // SAFETY: setting FD_CLOEXEC on a descriptor number has no memory effects; a stale
        // number (the directory's own fd) just fails with EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// Creates the working directory when missing, owned by the container user.
pub(crate) fn make_cwd(cwd: &str, user: &ExecUser) -> Result<(), RuntimeError> {
    let path = Path::new(cwd);
    if path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(path).map_err(|source| RuntimeError::Setup {
        step: "create the working directory".into(),
        path: path.to_path_buf(),
        source,
    })?;
    let owner = (
        nix::unistd::Uid::from_raw(user.uid),
        nix::unistd::Gid::from_raw(user.gid),
    );
    if let Err(err) = nix::unistd::chown(path, Some(owner.0), Some(owner.1)) {
        tracing::debug!(%err, ?path, "working directory left owned by root (user not mapped)");
    }
    Ok(())
}

/// The command, resolved and converted, with the process already running as the container
/// user under seccomp: only execve is left.
pub(crate) struct Ready {
    prepared: command::Prepared,
    command: String,
}

impl Ready {
    /// execve; returns only on failure.
    pub(crate) fn exec(self) -> RuntimeError {
        // Rust ignores SIGPIPE and burrow blocks signals around fork; the container starts
        // with default dispositions and an empty mask, as under Docker.
        // SAFETY: restoring the default disposition installs no handler.
        let _ = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) };
        let _ =
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
        command::exec(&self.prepared, &self.command)
    }
}

/// Opens the container's pty, provides /dev/console and hands the master to burrow.
fn open_terminal(sock: &OwnedFd, size: Option<(u16, u16)>) -> Result<OwnedFd, RuntimeError> {
    let pty = tty::open_in_container(size)?;
    mounts::bind_console(&Nix, &pty.slave_path)?;
    tty::send_master(sock, &pty.master)?;
    Ok(pty.slave)
}

/// Everything from the container's own mount namespace up to execve. `tty_sock` (with `-t`)
/// carries the pty master back to burrow.
pub(crate) fn prepare(
    spec: &ContainerSpec,
    map: &IdMapping,
    setgroups: bool,
    tty_sock: Option<OwnedFd>,
) -> Result<Ready, RuntimeError> {
    let opts = MountOptions {
        private_net: spec.network != NetworkMode::Host,
        tty_gid_mapped: map
            .gids
            .iter()
            .any(|m| m.container_id <= 5 && 5 - m.container_id < m.size),
    };
    let in_rootfs = || {
        let u = user::resolve(
            spec.user.as_deref(),
            Path::new("/etc/passwd"),
            Path::new("/etc/group"),
        )?;
        make_cwd(&spec.cwd, &u)?;
        // The pty comes from the container's devpts (mounted above), so the container sees
        // it as its terminal.
        let slave = match &tty_sock {
            Some(sock) => Some(open_terminal(sock, spec.tty_size)?),
            None => None,
        };
        Ok((u, slave))
    };
    let settle = |(user, slave): (ExecUser, Option<OwnedFd>)| {
        if !map.maps_user(user.uid, user.gid) {
            return Err(RuntimeError::UnmappedUser {
                uid: user.uid,
                gid: user.gid,
            });
        }
        if let Some(slave) = slave {
            // Like runc: the terminal belongs to the user the command runs as; its group
            // stays the one devpts gave it (tty when mapped).
            nix::unistd::fchown(&slave, Some(nix::unistd::Uid::from_raw(user.uid)), None)
                .map_err(process_err("give the terminal to the container user"))?;
            attach_terminal(slave)?;
        }
        Ok(user)
    };
    let user = namespace_steps(&Nix, spec, opts, clone_mount, in_rootfs, settle)?;
    drop(tty_sock);
    if !spec.tty && !spec.stdin {
        dev_null_onto(&[0])?;
    }
    finish(&spec.args, &spec.env, &spec.cwd, &user, setgroups)
}

/// G's namespace steps, in this order: a mount namespace of its own, the engine's files
/// cloned (`clone`), the mounts and the pivot with `in_rootfs` run once the container's
/// root is `/`, `settle` on what it found, then the hostname and `lo` in the uts and network
/// namespaces C made (unless the container shares the host's network).
pub(super) fn namespace_steps<T, U>(
    sys: &dyn Syscall,
    spec: &ContainerSpec,
    opts: MountOptions,
    clone: impl Fn(&Path) -> std::io::Result<OwnedFd>,
    in_rootfs: impl FnOnce() -> Result<T, RuntimeError>,
    settle: impl FnOnce(T) -> Result<U, RuntimeError>,
) -> Result<U, RuntimeError> {
    // A mount namespace of our own: pivot_root moves the root of every process in the
    // namespace, and the rootfs's daemon (fuse-overlayfs) stays behind in the parent's.
    sys.unshare(CloneFlags::CLONE_NEWNS)
        .map_err(|source| RuntimeError::Process {
            step: "create the container's mount namespace".into(),
            source,
        })?;
    // The engine's files are cloned as detached mounts now, from the host's view, and
    // attached after the pivot so that paths inside the image resolve inside it.
    let mut etc_sources = Vec::new();
    for (inside, host) in &spec.etc_files {
        let mount = clone(host).map_err(|source| RuntimeError::Setup {
            step: "clone a mount of the engine's file".into(),
            path: host.clone(),
            source,
        })?;
        etc_sources.push((inside.clone(), mount));
    }
    let mut found = None;
    mounts::setup(sys, spec, opts, &etc_sources, || {
        found = Some(in_rootfs()?);
        Ok(())
    })?;
    drop(etc_sources);
    let found = found.ok_or_else(|| RuntimeError::UserNotFound {
        user: spec.user.clone().unwrap_or_default(),
    })?;
    let settled = settle(found)?;
    if spec.network != NetworkMode::Host {
        sys.sethostname(&spec.hostname)
            .map_err(|source| RuntimeError::Setup {
                step: "set the hostname".into(),
                path: PathBuf::from(&spec.hostname),
                source,
            })?;
        sys.loopback_up()?;
    }
    Ok(settled)
}

/// The steps shared by pid 1 and `exec`: HOME, the command's path, the working directory,
/// then the user, capabilities, no_new_privs and seccomp. Any failure up to the seccomp
/// filter is still reported over the channel.
pub(crate) fn finish(
    args: &[String],
    env: &[String],
    cwd: &str,
    user: &ExecUser,
    setgroups: bool,
) -> Result<Ready, RuntimeError> {
    let mut env = env.to_vec();
    if command::env_get(&env, "HOME").is_none() {
        env.push(format!("HOME={}", user.home));
    }
    let name = args.first().cloned().unwrap_or_default();
    let path = command::find_in_path(&name, command::env_get(&env, "PATH"))?;
    let prepared = command::prepare(&path, args, &env)?;
    nix::unistd::chdir(Path::new(cwd)).map_err(|e| RuntimeError::Setup {
        step: "chdir to the working directory".into(),
        path: PathBuf::from(cwd),
        source: e.into(),
    })?;
    cloexec_from_3();
    privileges::drop_to(user, setgroups)?;
    seccomp::install(privileges::DOCKER_CAPS)?;
    Ok(Ready {
        prepared,
        command: name,
    })
}
