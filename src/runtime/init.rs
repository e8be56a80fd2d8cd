//! `--init`: the container's pid 1 stays burrow code and runs the command as its child, like
//! Docker's `docker-init` (tini) but without putting a binary into the container: the
//! dynamically linked burrow could not be exec'd in an image without the host's libc, so G
//! (see `process.rs`) does the whole setup (mounts, user, capabilities, seccomp), forks the
//! command, and loops here.
//!
//! As pid 1 of its namespace, G only receives the signals it does not leave at the default
//! disposition; it blocks every catchable one, so the kernel queues them (a blocked signal is
//! never discarded) and [`run_as_pid1`] forwards each to the child. It reaps every process
//! reparented to it and exits with the child's status (128+signal when killed); the kernel
//! then kills what is left in the namespace.
#![allow(unsafe_code)]

use std::fs::File;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use super::container::Ready;
use super::process::{fail, fork, process_err};

/// Shown as pid 1's name (`ps -o comm`); its cmdline stays burrow's.
const NAME: &str = "burrow-init";

/// Signals the kernel raises for a fault of the process itself: blocking them would hang or
/// kill it, so they keep their default action (tini leaves the same ones out).
const SYNCHRONOUS: [Signal; 6] = [
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// The signals pid 1 takes over: every one but the synchronous ones (SIGKILL and SIGSTOP
/// cannot be blocked; the kernel ignores them in the set).
pub(crate) fn forwarded_set() -> SigSet {
    let mut set = SigSet::all();
    for sig in SYNCHRONOUS {
        set.remove(sig);
    }
    set
}

/// Forks the command and supervises it; returns pid 1's exit code. The child reports an
/// execve failure over `to_parent` like pid 1 would, and its success closes the channel.
pub(crate) fn run_as_pid1(ready: Ready, to_parent: File) -> i32 {
    let set = forwarded_set();
    if let Err(e) = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None) {
        fail(&to_parent, process_err("block signals in init")(e));
    }
    let child = match fork() {
        Err(e) => fail(&to_parent, e),
        Ok(ForkResult::Child) => {
            isolate();
            // Ready::exec empties the signal mask and restores SIGPIPE.
            fail(&to_parent, ready.exec())
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    // The child's execve alone closes the channel now; burrow sees its outcome.
    drop((ready, to_parent));
    let _ = nix::sys::prctl::set_name(&std::ffi::CString::new(NAME).unwrap_or_default());
    supervise(child, &set)
}

/// A process group of its own, in the foreground of the terminal when there is one, so that
/// ^C on the tty reaches the command once (not pid 1 too, which would forward it again).
/// SIGTTOU is still blocked, so tcsetpgrp from the background is allowed.
fn isolate() {
    let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    let stdin = std::io::stdin();
    if nix::unistd::isatty(&stdin).unwrap_or(false) {
        let _ = nix::unistd::tcsetpgrp(&stdin, nix::unistd::getpid());
    }
}

/// The init loop: waits for signals, forwards them to `child`, reaps on SIGCHLD.
fn supervise(child: Pid, set: &SigSet) -> i32 {
    loop {
        let sig = match set.wait() {
            Ok(sig) => sig,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            let _ = nix::sys::signal::kill(child, sig);
            continue;
        }
        if let Some(code) = reap(child) {
            return code;
        }
    }
}

/// Reaps every exited process; the child's exit code once it is among them.
fn reap(child: Pid) -> Option<i32> {
    let mut code = None;
    loop {
        match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, c)) if pid == child => code = Some(c),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => code = Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) => return code,
            Ok(_) => {}
            Err(nix::Error::EINTR) => {}
            // ECHILD: no child left; the command cannot have gone unreaped, so this only
            // guards against looping forever.
            Err(_) => return code.or(Some(125)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_over_every_catchable_signal_but_faults() {
        let set = forwarded_set();
        for sig in [
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
            Signal::SIGQUIT,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
            Signal::SIGWINCH,
            Signal::SIGCHLD,
            Signal::SIGTTOU,
            Signal::SIGCONT,
        ] {
            assert!(set.contains(sig), "{sig:?} not taken over");
        }
        for sig in SYNCHRONOUS {
            assert!(!set.contains(sig), "{sig:?} must keep its default action");
        }
    }
}
