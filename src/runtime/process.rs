//! Forking the container and the jobs run in a user namespace.
//!
//! Process tree of [`run`]:
//! ```text
//! burrow (P)                     host namespaces; writes the id maps, forwards signals,
//!  │                             proxies the pty, waits for C
//!  └─ C  (fork)                  unshare(NEWUSER) → "ready" → P maps ids → setresuid(0);
//!      │                         subreaper; unshare(NEWNS) → mount namespace M1: / rslave,
//!      │                         the rootfs at the mount point (fuse-overlayfs starts D);
//!      │                         unshare(NEWUTS|NEWIPC|NEWPID|NEWCGROUP[|NEWNET]);
//!      │                         waits for G, unmounts the rootfs in M1, reaps D, and exits
//!      │                         with G's code (128+signal if killed)
//!      ├─ G  (fork)              pid 1 of the new pid namespace: unshare(NEWNS) → M2, a copy
//!      │                         of M1; /proc /dev /sys, pivot_root, pty, user, caps,
//!      │                         seccomp, execve (container.rs); with `--init` G forks the
//!      │                         command instead and stays as its init (init.rs)
//!      └─ D  (reparented)        the fuse-overlayfs daemon, in M1 and burrow's pid namespace:
//!                                pivot_root in M2 leaves its root alone (else it deadlocks
//!                                on its own mount); exits once C unmounts the rootfs
//! ```
//! One channel (a CLOEXEC pipe) carries C's and G's messages to P: `UserNsReady`,
//! `ContainerPid`, then either a `Failed` or end-of-file once G's execve closed the last
//! writer. With `-t`, G opens the pty in the container's devpts and sends the master to P
//! over a socket pair (SCM_RIGHTS) before execve. C and G die with their parent
//! (PR_SET_PDEATHSIG).
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Gid, Pid, Uid};

use super::channel::{self, ChildFailure, ToChild, ToParent};
use super::proc::scrub_after_fork;
use super::sys::{Nix, Syscall};
use super::tty::{self, RawMode, Signals};
use super::{ContainerSpec, IdMapping, NetworkMode, RuntimeError, container, init, mounts};

pub(super) fn process_err(step: &str) -> impl FnOnce(nix::Error) -> RuntimeError {
    let step = step.to_string();
    move |e| RuntimeError::Process {
        step,
        source: e.into(),
    }
}

pub(super) fn channel_err(what: &'static str) -> impl FnOnce(std::io::Error) -> RuntimeError {
    move |source| RuntimeError::Channel { what, source }
}

pub(super) fn fork() -> Result<ForkResult, RuntimeError> {
    // SAFETY: callers run this while the process is single-threaded (documented on the public
    // functions), so the child cannot inherit a lock held by another thread.
    unsafe { nix::unistd::fork() }.map_err(process_err("fork"))
}

/// Leaves a forked child without running the parent's exit handlers or destructors.
pub(super) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process at once; no Rust state is observed afterwards.
    unsafe { libc::_exit(code) }
}

/// Dies with the parent; returns false when the parent is already gone.
pub(super) fn die_with_parent(parent: Pid) -> bool {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    nix::unistd::getppid() == parent
}

/// Child side of the handshake: new user namespace, wait for the maps, become root in it.
/// `setgroups` says whether the maps allow setgroups(2); it is computed before the fork,
/// since inside the namespace every process looks like root.
pub(super) fn enter_userns(
    setgroups: bool,
    to_parent: &File,
    from_parent: &File,
) -> Result<(), RuntimeError> {
    Nix.unshare(CloneFlags::CLONE_NEWUSER)
        .map_err(io_step("create a user namespace"))?;
    wait_for_maps(to_parent, from_parent)?;
    become_root(setgroups)
}

/// Tells the parent the new user namespace exists and waits until it wrote the id maps.
fn wait_for_maps(to_parent: &File, from_parent: &File) -> Result<(), RuntimeError> {
    channel::send(to_parent, &ToParent::UserNsReady)
        .map_err(channel_err("the user namespace handshake"))?;
    match channel::recv::<ToChild>(from_parent) {
        Ok(Some(ToChild::MapsWritten)) => Ok(()),
        // The parent failed to map ids and reports that itself.
        _ => exit_now(125),
    }
}

fn io_step(step: &str) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let step = step.to_string();
    move |source| RuntimeError::Process { step, source }
}

/// Opens the namespace file at `path` (`opening` names it in the error, before its path)
/// and joins it: `flag` says its type, `joining` names the step.
pub(super) fn join(
    sys: &dyn Syscall,
    path: &Path,
    flag: CloneFlags,
    opening: &str,
    joining: &str,
) -> Result<(), RuntimeError> {
    let ns = File::open(path).map_err(|source| RuntimeError::Process {
        step: format!("open {opening}{}", path.display()),
        source,
    })?;
    sys.setns(ns.as_fd(), flag).map_err(io_step(joining))
}

fn become_root(setgroups: bool) -> Result<(), RuntimeError> {
    let root_gid = Gid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid).map_err(process_err("become gid 0"))?;
    if setgroups {
        nix::unistd::setgroups(&[root_gid]).map_err(process_err("clear supplementary groups"))?;
    }
    let root = Uid::from_raw(0);
    nix::unistd::setresuid(root, root, root).map_err(process_err("become uid 0"))
}

/// Parent side of the handshake.
pub(super) fn map_child(
    child: Pid,
    map: &IdMapping,
    from_child: &File,
    to_child: &File,
) -> Result<(), RuntimeError> {
    match channel::recv::<ToParent>(from_child)
        .map_err(channel_err("the user namespace handshake"))?
    {
        Some(ToParent::UserNsReady) => {}
        Some(ToParent::Failed(f)) => return Err(f.into()),
        _ => {
            return Err(RuntimeError::ChildVanished {
                pid: child.as_raw(),
                stage: "creating its user namespace",
            });
        }
    }
    map.apply(child.as_raw())?;
    channel::send(to_child, &ToChild::MapsWritten)
        .map_err(channel_err("the user namespace handshake"))
}

/// Sends the failure (best effort: the parent may be gone) and exits.
pub(super) fn fail(to_parent: &File, err: RuntimeError) -> ! {
    let _ = channel::send(to_parent, &ToParent::Failed(ChildFailure::from(err)));
    exit_now(125)
}

pub(super) fn wait_code(pid: Pid) -> Result<i32, RuntimeError> {
    loop {
        match nix::sys::wait::waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(process_err("wait for the child")(e)),
        }
    }
}

/// Starts the container in the foreground and waits: returns its exit code (128+signal when
/// killed). Call only while the process has no other threads. `on_started` gets the host pid of the container's pid 1 once its command
/// has been executed (the monitor records it). `on_started` runs in this process, single
/// threaded, before the container's output is proxied. With `NetworkMode::Attached`,
/// `on_netns` gets the pid of a process in the container's new network namespace before the
/// command runs; its error ends the start.
pub fn run_observed(
    spec: &ContainerSpec,
    map: &IdMapping,
    on_netns: &mut dyn FnMut(i32) -> Result<(), RuntimeError>,
    on_started: &mut dyn FnMut(i32),
) -> Result<i32, RuntimeError> {
    let tty_channel = if spec.tty {
        Some(tty::master_channel()?)
    } else {
        None
    };
    let signals = Signals::block()?;
    let (from_child, to_parent) = channel::pipe()?;
    let (from_parent, to_child) = channel::pipe()?;
    let parent = nix::unistd::getpid();
    let setgroups = map.setgroups_allowed();
    match fork()? {
        ForkResult::Child => {
            signals.restore_in_child();
            drop((from_child, to_child));
            let tty_sock = tty_channel.map(|(_, theirs)| theirs);
            let code = middle(
                spec,
                map,
                setgroups,
                parent,
                to_parent,
                &from_parent,
                tty_sock,
            );
            exit_now(code)
        }
        ForkResult::Parent { child } => {
            drop((to_parent, from_parent));
            let tty_sock = tty_channel.map(|(ours, _)| ours);
            let started =
                start(spec, child, map, &from_child, to_child, on_netns).and_then(|pid| {
                    let master = tty_sock.as_ref().map(tty::recv_master).transpose()?;
                    Ok((pid, master))
                });
            let (container, master) = match started {
                Ok(started) => started,
                Err(e) => {
                    let _ = wait_code(child);
                    return Err(e);
                }
            };
            tracing::debug!(id = %spec.id, pid = container.as_raw(), "container started");
            on_started(container.as_raw());
            let _raw = if spec.tty && spec.stdin {
                RawMode::enter()?
            } else {
                None
            };
            tty::supervise(
                &signals,
                child,
                container,
                master.as_ref(),
                spec.stdin,
                spec.tty_size_file.as_deref(),
            )
        }
    }
}

/// Maps the child's ids and waits until its grandchild exec'd (end-of-file) or failed.
fn start(
    spec: &ContainerSpec,
    child: Pid,
    map: &IdMapping,
    from_child: &File,
    to_child: File,
    on_netns: &mut dyn FnMut(i32) -> Result<(), RuntimeError>,
) -> Result<Pid, RuntimeError> {
    let vanished = |stage| RuntimeError::ChildVanished {
        pid: child.as_raw(),
        stage,
    };
    if spec.userns.is_none() {
        map_child(child, map, from_child, &to_child)?;
        crate::timing::mark("idmap:done");
    }
    if spec.network == NetworkMode::Attached {
        match channel::recv::<ToParent>(from_child).map_err(channel_err("the network handshake"))? {
            Some(ToParent::NetnsReady) => {}
            Some(ToParent::Failed(f)) => return Err(f.into()),
            _ => return Err(vanished("creating its network namespace")),
        }
        on_netns(child.as_raw())?;
        crate::timing::mark("network:done");
        channel::send(&to_child, &ToChild::NetworkDone)
            .map_err(channel_err("the network handshake"))?;
    }
    drop(to_child);
    let pid =
        match channel::recv::<ToParent>(from_child).map_err(channel_err("the container's pid"))? {
            Some(ToParent::ContainerPid(pid)) => Pid::from_raw(pid),
            Some(ToParent::Failed(f)) => return Err(f.into()),
            _ => return Err(vanished("starting pid 1 of the container")),
        };
    crate::timing::mark("pid1:forked");
    match channel::recv::<ToParent>(from_child)
        .map_err(channel_err("the container's exec status"))?
    {
        None => Ok(pid),
        Some(ToParent::Failed(f)) => Err(f.into()),
        Some(_) => Err(vanished("executing the command")),
    }
}

/// Why C stopped before forking G.
#[derive(Debug)]
pub(super) enum Stopped {
    /// A step failed; `release`: the rootfs is mounted already and must be released.
    Failed { err: RuntimeError, release: bool },
    /// The parent is gone: exit quietly.
    ParentGone,
}

impl From<RuntimeError> for Stopped {
    fn from(err: RuntimeError) -> Self {
        Stopped::Failed {
            err,
            release: false,
        }
    }
}

/// C's namespace steps, in this order: the user namespace (joined, or new, with `mapped`
/// waiting for the parent's id maps), `settle` (credentials and what they reset), the mount
/// namespace, the rootfs mounted in it, the other namespaces, and the network namespace
/// to join (`--network container:NAME`).
pub(super) fn namespaces(
    sys: &dyn Syscall,
    spec: &ContainerSpec,
    mapped: impl FnOnce() -> Result<(), RuntimeError>,
    settle: impl FnOnce() -> Result<(), Stopped>,
) -> Result<(), Stopped> {
    match &spec.userns {
        Some(path) => join(
            sys,
            path,
            CloneFlags::CLONE_NEWUSER,
            "the user namespace ",
            "join the network holder's user namespace",
        )?,
        None => {
            sys.unshare(CloneFlags::CLONE_NEWUSER)
                .map_err(io_step("create a user namespace"))?;
            mapped()?;
        }
    }
    settle()?;
    // The rootfs is mounted here, before the pid namespace, so fuse-overlayfs runs outside
    // the container (not in its `ps`, not killed with it) and keeps this namespace's root.
    sys.unshare(CloneFlags::CLONE_NEWNS)
        .map_err(io_step("create a mount namespace"))?;
    let mounted = |err| Stopped::Failed { err, release: true };
    mounts::mount_root(sys, spec).map_err(mounted)?;
    let mut flags = CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWCGROUP;
    if matches!(spec.network, NetworkMode::None | NetworkMode::Attached) {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    sys.unshare(flags)
        .map_err(io_step("create the container's namespaces"))
        .map_err(mounted)?;
    if let NetworkMode::Joined(netns) = &spec.network {
        let step = "join the other container's network namespace";
        join(sys, netns, CloneFlags::CLONE_NEWNET, "", step).map_err(mounted)?;
    }
    Ok(())
}

/// C: user namespace, a mount namespace holding the rootfs, the other namespaces, then fork
/// G and relay its status; afterwards release the rootfs so its daemon (if any) exits.
fn middle(
    spec: &ContainerSpec,
    map: &IdMapping,
    setgroups: bool,
    parent: Pid,
    to_parent: File,
    from_parent: &File,
    tty_sock: Option<OwnedFd>,
) -> i32 {
    if !die_with_parent(parent) {
        return 125;
    }
    let settle = || {
        become_root(setgroups)?;
        // Changing credentials cleared the parent-death signal.
        if !die_with_parent(parent) {
            return Err(Stopped::ParentGone);
        }
        // fuse-overlayfs daemonises; as a subreaper C inherits the daemon and can wait for
        // it.
        nix::sys::prctl::set_child_subreaper(true).map_err(process_err("become a subreaper"))?;
        Ok(())
    };
    let mapped = || wait_for_maps(&to_parent, from_parent);
    match namespaces(&Nix, spec, mapped, settle) {
        Ok(()) => {}
        Err(Stopped::ParentGone) => return 125,
        Err(Stopped::Failed { err, release: r }) => {
            if r {
                release(spec);
            }
            fail(&to_parent, err);
        }
    }
    if spec.network == NetworkMode::Attached {
        let _ = channel::send(&to_parent, &ToParent::NetnsReady);
        if !matches!(
            channel::recv::<ToChild>(from_parent),
            Ok(Some(ToChild::NetworkDone))
        ) {
            // The parent reports why it did not connect the namespace.
            release(spec);
            return 125;
        }
    }
    match fork() {
        Err(e) => {
            release(spec);
            fail(&to_parent, e)
        }
        Ok(ForkResult::Child) => {
            let mut keep = vec![to_parent.as_raw_fd()];
            keep.extend(tty_sock.as_ref().map(|s| s.as_raw_fd()));
            scrub_after_fork(&keep);
            // G is pid 1 of a new pid namespace: getppid() reads 0 there, so C cannot be
            // checked for; C only exits after G anyway.
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            match container::prepare(spec, map, setgroups, tty_sock) {
                Err(e) => fail(&to_parent, e),
                Ok(ready) if spec.init => exit_now(init::run_as_pid1(ready, to_parent)),
                Ok(ready) => fail(&to_parent, ready.exec()),
            }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(tty_sock);
            let _ = channel::send(&to_parent, &ToParent::ContainerPid(child.as_raw()));
            drop(to_parent);
            let code = wait_code(child).unwrap_or(125);
            release(spec);
            code
        }
    }
}

/// How long the rootfs's daemon gets to exit once its mount is released.
const DAEMON_GRACE: Duration = Duration::from_secs(5);

/// Unmounts the rootfs in C's mount namespace (the container's own namespace died with its
/// processes), then reaps what C inherited as a subreaper: fuse-overlayfs exits once the
/// last mount of its file system is gone. Best effort: C is about to exit.
fn release(spec: &ContainerSpec) {
    if let Err(err) = mounts::release_root(&Nix, spec) {
        tracing::debug!(%err, "rootfs not unmounted");
    }
    let deadline = Instant::now() + DAEMON_GRACE;
    loop {
        match nix::sys::wait::waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
            Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(WaitStatus::StillAlive) => {
                kill_children();
                let _ = nix::sys::wait::waitpid(None, Some(WaitPidFlag::__WALL));
            }
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(_) => return,
        }
    }
}

/// SIGKILLs the children of this process that did not exit in time.
fn kill_children() {
    let me = nix::unistd::getpid();
    let path = format!("/proc/{me}/task/{me}/children");
    let children = std::fs::read_to_string(&path).unwrap_or_default();
    for pid in children.split_whitespace().filter_map(|p| p.parse().ok()) {
        tracing::debug!(pid, "killing a rootfs daemon that outlived its mount");
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}
