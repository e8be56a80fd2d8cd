//! Process identity, signal masks and after-fork hygiene: what the monitor, the network
//! holder, the plugin host and the container's forks all need, so none of them imports
//! another for it. (`procfs.rs` reads a container's processes for `top`; this file is about
//! telling one process from another and about the calling process itself.)
#![allow(unsafe_code)]

use std::os::fd::RawFd;

/// The start time of a process (clock ticks after boot, /proc/PID/stat field 22), or None
/// when it does not exist. The command name may hold spaces and parentheses, so fields are
/// counted after the last ')'.
pub fn process_start_time(pid: i32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ')' come field 3 (state) onwards; field 22 is the 20th of those.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True when `pid` is still the process that started at `start`.
pub fn is_same_process(pid: i32, start: Option<i64>) -> bool {
    pid > 0 && start.is_some() && process_start_time(pid) == start
}

/// For helper threads: signals are the main thread's business (signalfds and sig-proxy
/// block them there, and a process-directed signal goes to any thread that does not).
pub fn block_all_signals() {
    let _ = nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&nix::sys::signal::SigSet::all()),
        None,
    );
}

/// What a child that the container can see does first, right after the fork: closes every
/// descriptor above 2 but `keep` (close-on-exec is not enough for a process that may never
/// exec, like `--init`'s pid 1, or that the container can look at before it does), forgets
/// burrow's environment, and becomes non-dumpable, so that the container's root can neither
/// open its /proc files (fd, environ, mem) nor ptrace it. The container's command is
/// dumpable again once exec'd: execve resets the flag.
pub(crate) fn scrub_after_fork(keep: &[RawFd]) {
    let _ = nix::sys::prctl::set_dumpable(false);
    close_fds_except(keep);
    for (key, _) in std::env::vars_os() {
        // SAFETY: the forked child is single-threaded: nothing reads the environment
        // concurrently.
        unsafe { std::env::remove_var(key) };
    }
}

/// Closes every descriptor from 3 up that is not in `keep`.
fn close_fds_except(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .collect();
    keep.retain(|&fd| fd > 2);
    keep.sort_unstable();
    keep.dedup();
    let mut from = 3u32;
    for bound in keep.iter().copied().chain([u32::MAX]) {
        if bound > from && !close_range(from, bound - 1) {
            close_by_listing(&keep);
            return;
        }
        from = bound.saturating_add(1);
    }
}

/// close_range(2) without flags; false where the kernel lacks it (before 5.9).
fn close_range(first: u32, last: u32) -> bool {
    // SAFETY: close_range takes no pointers; it closes descriptors this process owns.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) == 0 }
}

fn close_by_listing(keep: &[u32]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if fd > 2 && !keep.contains(&(fd as u32)) {
            // SAFETY: closing a descriptor number; the listing's own is closed by its drop
            // (EBADF at worst).
            unsafe { libc::close(fd) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_identifies_a_process() {
        let me = std::process::id() as i32;
        let start = process_start_time(me);
        assert!(start.is_some());
        assert!(is_same_process(me, start));
        assert!(
            !is_same_process(me, start.map(|s| s + 1)),
            "another start time"
        );
        assert!(!is_same_process(i32::MAX, start));
    }
}
