//! `exec`: a new process in the namespaces of a running container, set up like its pid 1
//! (user, working directory, terminal, capabilities, no_new_privs, seccomp).
//!
//! Process tree of [`exec`]:
//! ```text
//! burrow (P)        host namespaces: opens the target's namespace files, forwards signals,
//!  │                proxies the pty, waits for M
//!  └─ M  (fork)     setns into user, mnt, pid, uts, ipc, net, cgroup; forks E and exits with
//!      │            its code (at once with `-d`: E is then reparented by the kernel in M's
//!      │            own pid namespace, to the host's init or a subreaper, not to pid 1)
//!      └─ E (fork)  in the container's pid namespace: user lookup, cwd, pty, caps, seccomp,
//!                   execve
//! ```
//! P itself never joins: it stays in the host's mount namespace. The channel carries M's
//! `ContainerPid` (E's host pid, for signals) and any failure, then end-of-file at execve.
//!
//! Permissions: the namespace files of a process are guarded by a ptrace access check. The
//! container's processes may run as a subordinate uid (`-u app` → host uid 100999...), so
//! burrow's user is not their owner, yet the check passes: the caller has CAP_SYS_PTRACE in
//! the target's user namespace because it owns that namespace (created by burrow's euid from
//! burrow's namespace). Verified on 6.18 with pid 1 as a subordinate uid: listing
//! /proc/PID/ns is denied (the directory's mode), opening /proc/PID/ns/user works. setns on
//! the user namespace likewise needs CAP_SYS_ADMIN there, which the owner has; the other
//! namespaces are owned by it, so after joining it the rest follow. A namespace the target
//! shares with burrow (the network with `--network host`) is skipped: joining the host's own
//! network namespace would need CAP_SYS_ADMIN in the initial user namespace.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, Pid};

use super::channel::{self, ToParent};
use super::container::{self, Ready};
use super::proc::scrub_after_fork;
use super::process::{channel_err, die_with_parent, exit_now, fail, fork, process_err, wait_code};
use super::sys::{Nix, Syscall};
use super::tty::{self, RawMode, Signals};
use super::user::{self, ExecUser};
use super::{ExecSpec, IdMapping, RuntimeError, procfs};

/// The namespaces joined, in this order: the user namespace first, since it grants the
/// capabilities that joining the others requires.
const NAMESPACES: [(&str, CloneFlags); 7] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("mnt", CloneFlags::CLONE_NEWNS),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("net", CloneFlags::CLONE_NEWNET),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
];

/// One namespace of the target, opened.
#[derive(Debug)]
struct Namespace {
    kind: &'static str,
    flag: CloneFlags,
    fd: OwnedFd,
}

/// Which namespaces to join given whether each is the one burrow is already in: all that
/// differ, in [`NAMESPACES`] order. A shared user namespace means `pid` is no container.
fn to_join(
    pid: i32,
    shared: impl Fn(&'static str) -> bool,
) -> Result<Vec<(&'static str, CloneFlags)>, RuntimeError> {
    if shared("user") {
        return Err(RuntimeError::NotAContainer {
            pid,
            reason: "it shares burrow's user namespace",
        });
    }
    Ok(NAMESPACES
        .into_iter()
        .filter(|(kind, _)| !shared(kind))
        .collect())
}

fn gone_or(pid: i32, path: &Path, e: std::io::Error) -> RuntimeError {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ESRCH) => RuntimeError::ContainerGone { pid },
        _ => RuntimeError::Namespace {
            pid,
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// A pidfd for `pid`: it keeps naming this process even if the pid is reused.
fn pidfd_open(pid: i32) -> Result<OwnedFd, RuntimeError> {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(gone_or(pid, Path::new("pidfd"), e));
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// True once the process behind `pidfd` has exited (the pidfd polls readable).
fn exited(pidfd: &OwnedFd) -> bool {
    let mut fds = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(pidfd),
        nix::poll::PollFlags::POLLIN,
    )];
    matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Opens every namespace of `pid` to join, before any setns. The pidfd taken first proves
/// that the files opened belong to that process, not to a later one that reused its pid.
fn open_namespaces(pid: i32) -> Result<Vec<Namespace>, RuntimeError> {
    let pidfd = pidfd_open(pid)?;
    let nspid = procfs::nspid(pid)?;
    if nspid.len() < 2 {
        return Err(RuntimeError::NotAContainer {
            pid,
            reason: "it runs in burrow's pid namespace",
        });
    }
    if nspid.last() != Some(&1) {
        return Err(RuntimeError::NotAContainer {
            pid,
            reason: "it is not pid 1 of its pid namespace",
        });
    }
    // `--init`'s pid 1 keeps its files closed; one of its descendants stands for it.
    let anchor = procfs::namespace_anchor(pid)?;
    let anchor_fd = pidfd_open(anchor)?;
    let mut opened = Vec::new();
    for (kind, flag) in NAMESPACES {
        let path = PathBuf::from(format!("/proc/{anchor}/ns/{kind}"));
        let file = File::open(&path).map_err(|e| gone_or(pid, &path, e))?;
        let target = file.metadata().map_err(|e| gone_or(pid, &path, e))?;
        let own = std::fs::metadata(format!("/proc/self/ns/{kind}")).ok();
        let shared = own.is_some_and(|m| m.dev() == target.dev() && m.ino() == target.ino());
        opened.push((kind, flag, OwnedFd::from(file), shared));
    }
    let join = to_join(pid, |kind| {
        opened.iter().any(|(k, _, _, shared)| *k == kind && *shared)
    })?;
    if exited(&pidfd) || exited(&anchor_fd) {
        return Err(RuntimeError::ContainerGone { pid });
    }
    Ok(opened
        .into_iter()
        .filter(|(kind, ..)| join.iter().any(|(k, _)| k == kind))
        .map(|(kind, flag, fd, _)| Namespace { kind, flag, fd })
        .collect())
}

/// Runs a process inside the running container whose pid 1 has host pid `pid`. Returns its
/// exit code (128+signal when killed), or 0 at once with `detach`. Call only while the
/// process has no other threads.
pub fn exec(pid: i32, spec: &ExecSpec, map: &IdMapping) -> Result<i32, RuntimeError> {
    let namespaces = open_namespaces(pid)?;
    // Nobody would read a detached process's terminal.
    let use_tty = spec.tty && !spec.detach;
    let tty_channel = if use_tty {
        Some(tty::master_channel()?)
    } else {
        None
    };
    let signals = Signals::block()?;
    let (from_child, to_parent) = channel::pipe()?;
    let parent = nix::unistd::getpid();
    let setgroups = map.setgroups_allowed();
    match fork()? {
        ForkResult::Child => {
            signals.restore_in_child();
            drop(from_child);
            let sock = tty_channel.map(|(_, theirs)| theirs);
            let code = middle(
                pid,
                spec,
                map,
                setgroups,
                parent,
                &namespaces,
                to_parent,
                sock,
            );
            exit_now(code)
        }
        ForkResult::Parent { child } => {
            drop((to_parent, namespaces));
            let sock = tty_channel.map(|(ours, _)| ours);
            let started = started(child, &from_child).and_then(|e| {
                let master = sock.as_ref().map(tty::recv_master).transpose()?;
                Ok((e, master))
            });
            let (process, master) = match started {
                Ok(started) => started,
                Err(e) => {
                    let _ = wait_code(child);
                    return Err(e);
                }
            };
            tracing::debug!(container = pid, pid = process.as_raw(), "exec started");
            if spec.detach {
                wait_code(child)?;
                return Ok(0);
            }
            let _raw = if use_tty && spec.stdin {
                RawMode::enter()?
            } else {
                None
            };
            tty::supervise(&signals, child, process, master.as_ref(), spec.stdin, None)
        }
    }
}

/// Waits for E's host pid, then for its execve (end-of-file) or its failure.
fn started(child: Pid, from_child: &File) -> Result<Pid, RuntimeError> {
    let vanished = |stage| RuntimeError::ChildVanished {
        pid: child.as_raw(),
        stage,
    };
    let process = match channel::recv::<ToParent>(from_child)
        .map_err(channel_err("the exec'd process's pid"))?
    {
        Some(ToParent::ContainerPid(pid)) => Pid::from_raw(pid),
        Some(ToParent::Failed(f)) => return Err(f.into()),
        _ => return Err(vanished("joining the container")),
    };
    match channel::recv::<ToParent>(from_child).map_err(channel_err("the exec status"))? {
        None => Ok(process),
        Some(ToParent::Failed(f)) => Err(f.into()),
        Some(_) => Err(vanished("executing the command")),
    }
}

/// M: joins the namespaces, forks E, relays its status.
#[allow(clippy::too_many_arguments)]
fn middle(
    pid: i32,
    spec: &ExecSpec,
    map: &IdMapping,
    setgroups: bool,
    parent: Pid,
    namespaces: &[Namespace],
    to_parent: File,
    tty_sock: Option<OwnedFd>,
) -> i32 {
    if !spec.detach && !die_with_parent(parent) {
        return 125;
    }
    if let Err(e) = join(&Nix, pid, namespaces) {
        fail(&to_parent, e);
    }
    // Joining the user namespace changed the credentials, which cleared the death signal.
    if !spec.detach && !die_with_parent(parent) {
        return 125;
    }
    match fork() {
        // The pid namespace's init has exited: no process can enter it any more.
        Err(RuntimeError::Process { source, .. })
            if source.raw_os_error() == Some(libc::ENOMEM) =>
        {
            fail(&to_parent, RuntimeError::ContainerGone { pid })
        }
        Err(e) => fail(&to_parent, e),
        Ok(ForkResult::Child) => {
            let mut keep = vec![to_parent.as_raw_fd()];
            keep.extend(tty_sock.as_ref().map(|s| s.as_raw_fd()));
            scrub_after_fork(&keep);
            if !spec.detach {
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            }
            let err = match enter(spec, map, setgroups, tty_sock) {
                Ok(ready) => ready.exec(),
                Err(e) => e,
            };
            fail(&to_parent, err)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(tty_sock);
            let _ = channel::send(&to_parent, &ToParent::ContainerPid(child.as_raw()));
            drop(to_parent);
            if spec.detach {
                0
            } else {
                wait_code(child).unwrap_or(125)
            }
        }
    }
}

/// M's namespace steps: joins each of `namespaces` in its order (the user namespace first,
/// see [`NAMESPACES`]), stopping at the first that fails.
fn join(sys: &dyn Syscall, pid: i32, namespaces: &[Namespace]) -> Result<(), RuntimeError> {
    for ns in namespaces {
        sys.setns(ns.fd.as_fd(), ns.flag)
            .map_err(|source| RuntimeError::JoinNamespace {
                pid,
                kind: ns.kind,
                source,
            })?;
    }
    Ok(())
}

/// E: everything between joining and execve, with the container's root as `/`.
fn enter(
    spec: &ExecSpec,
    map: &IdMapping,
    setgroups: bool,
    tty_sock: Option<OwnedFd>,
) -> Result<Ready, RuntimeError> {
    let user = user::resolve(
        spec.user.as_deref(),
        Path::new("/etc/passwd"),
        Path::new("/etc/group"),
    )?;
    if !map.maps_user(user.uid, user.gid) {
        return Err(RuntimeError::UnmappedUser {
            uid: user.uid,
            gid: user.gid,
        });
    }
    container::make_cwd(&spec.cwd, &user)?;
    if let Some(sock) = &tty_sock {
        attach_pty(sock, &user)?;
    } else if spec.detach {
        container::dev_null_onto(&[0, 1, 2])?;
    } else if !spec.stdin {
        container::dev_null_onto(&[0])?;
    }
    drop(tty_sock);
    container::finish(&spec.args, &spec.env, &spec.cwd, &user, setgroups)
}

/// A new pty of the container's devpts as the controlling terminal and stdio; the master
/// goes to burrow.
fn attach_pty(sock: &OwnedFd, user: &ExecUser) -> Result<(), RuntimeError> {
    let pty = tty::open_in_container(None)?;
    tty::send_master(sock, &pty.master)?;
    nix::unistd::fchown(&pty.slave, Some(nix::unistd::Uid::from_raw(user.uid)), None)
        .map_err(process_err("give the terminal to the exec user"))?;
    container::attach_terminal(pty.slave)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_the_user_namespace_first_and_skips_shared_ones() {
        let order = to_join(7, |kind| kind == "net").unwrap();
        let kinds: Vec<&str> = order.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, ["user", "mnt", "pid", "uts", "ipc", "cgroup"]);
        assert_eq!(order[0].1, CloneFlags::CLONE_NEWUSER);
        let err = to_join(7, |kind| kind == "user").unwrap_err();
        assert_eq!(
            err.to_string(),
            "process 7 is not a container's pid 1: it shares burrow's user namespace"
        );
    }

    #[test]
    fn joins_each_namespace_in_order_and_stops_at_the_first_refusal() {
        use crate::runtime::sys::tests::Recorder;
        let opened = |kinds: &[(&'static str, CloneFlags)]| -> Vec<Namespace> {
            kinds
                .iter()
                .map(|&(kind, flag)| Namespace {
                    kind,
                    flag,
                    fd: File::open("/dev/null").unwrap().into(),
                })
                .collect()
        };
        let all = opened(&to_join(7, |_| false).unwrap());
        let rec = Recorder::default();
        join(&rec, 7, &all).unwrap();
        assert_eq!(
            rec.lines(),
            [
                "setns CLONE_NEWUSER",
                "setns CLONE_NEWNS",
                "setns CLONE_NEWPID",
                "setns CLONE_NEWUTS",
                "setns CLONE_NEWIPC",
                "setns CLONE_NEWNET",
                "setns CLONE_NEWCGROUP",
            ]
        );
        let rec = Recorder {
            fail: vec!["setns CLONE_NEWPID".into()],
            ..Default::default()
        };
        let err = join(&rec, 7, &all).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot join the pid namespace of container process 7"
        );
        assert_eq!(rec.lines().last().unwrap(), "setns CLONE_NEWPID");
    }

    #[test]
    fn refuses_processes_that_are_not_a_container() {
        // burrow's own process: same pid namespace.
        let me = std::process::id() as i32;
        assert!(matches!(
            open_namespaces(me),
            Err(RuntimeError::NotAContainer { pid, .. }) if pid == me
        ));
        let err = open_namespaces(i32::MAX).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "container process {} is gone (the container is not running)",
                i32::MAX
            )
        );
        assert_eq!(err.exit_code(), 125);
    }
}
