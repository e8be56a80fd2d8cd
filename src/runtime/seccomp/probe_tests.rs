//! The filter installed in a real process: a forked child installs it, makes syscalls and
//! reports what they returned through a pipe.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;

use caps::Capability;
use seccompiler::BpfProgram;

use super::bpf::X32_SYSCALL_BIT;
use super::{Arch, KernelVersion, apply, default_programs};

/// What one child reports, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Report {
    getpid: i64,
    io_uring_setup: i64,
    x32_getpid: i64,
    /// 1 when clone(CLONE_NEWUSER) made a child, else -errno.
    clone_newuser: i64,
    personality_query: i64,
    personality_no_randomize: i64,
    clone3: i64,
    /// Last: it moves the child into a new user namespace.
    unshare_newuser: i64,
}

const FIELDS: usize = 8;

/// The syscall's return value, or -errno.
fn ret(r: libc::c_long) -> i64 {
    if r == -1 {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        r
    }
}

/// Runs in the forked child: raw syscalls only.
fn probe() -> [i64; FIELDS] {
    let mut params = [0u8; 120]; // struct io_uring_params
    // SAFETY (all blocks below): raw syscalls with integer arguments or pointers to live
    // stack buffers; the clone child only calls _exit.
    let getpid = ret(unsafe { libc::syscall(libc::SYS_getpid) });
    let io_uring_setup =
        ret(unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, params.as_mut_ptr()) });
    let x32_getpid =
        ret(unsafe { libc::syscall(libc::c_long::from(X32_SYSCALL_BIT) | libc::SYS_getpid) });
    let flags = libc::c_long::from(libc::CLONE_NEWUSER | libc::SIGCHLD);
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
    if pid == 0 {
        unsafe { libc::_exit(0) };
    }
    let clone_newuser = if pid > 0 {
        unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0) };
        1
    } else {
        ret(pid)
    };
    let personality_query = ret(unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffffu64) });
    let personality_no_randomize =
        ret(unsafe { libc::syscall(libc::SYS_personality, 0x0004_0000u64) });
    let clone3 = ret(unsafe { libc::syscall(libc::SYS_clone3, 0, 0) });
    let unshare_newuser = ret(unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) });
    [
        getpid,
        io_uring_setup,
        x32_getpid,
        clone_newuser,
        personality_query,
        personality_no_randomize,
        clone3,
        unshare_newuser,
    ]
}

/// Forks; the child installs `programs` (none: no filter) and runs [`probe`].
fn in_child(programs: Option<&[BpfProgram]>) -> Report {
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    // SAFETY: the test harness has other threads; the child therefore does nothing but raw
    // syscalls (prctl and seccomp in `apply`, the probes, write, _exit): no allocation and no
    // lock another thread could hold.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let out = match programs {
            Some(p) if apply(p).is_err() => [i64::MIN; FIELDS],
            _ => probe(),
        };
        let bytes = out.map(i64::to_ne_bytes);
        // SAFETY: writes the stack array; _exit skips the parent's atexit handlers.
        unsafe {
            libc::write(
                write_end.as_raw_fd(),
                bytes.as_ptr().cast(),
                std::mem::size_of_val(&bytes),
            );
            libc::_exit(0);
        }
    }
    drop(write_end);
    let mut buf = [0u8; 8 * FIELDS];
    File::from(read_end)
        .read_exact(&mut buf)
        .expect("the child reports its results");
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let v: Vec<i64> = buf
        .chunks_exact(8)
        .map(|c| i64::from_ne_bytes(c.try_into().unwrap()))
        .collect();
    assert_ne!(v[0], i64::MIN, "the child could not install the filter");
    Report {
        getpid: v[0],
        io_uring_setup: v[1],
        x32_getpid: v[2],
        clone_newuser: v[3],
        personality_query: v[4],
        personality_no_randomize: v[5],
        clone3: v[6],
        unshare_newuser: v[7],
    }
}

/// What `install` would install.
fn programs(caps: &[Capability]) -> Vec<BpfProgram> {
    default_programs(
        caps,
        Arch::native().unwrap(),
        KernelVersion::running().unwrap(),
    )
    .unwrap()
}

const EPERM: i64 = -(libc::EPERM as i64);
const ENOSYS: i64 = -(libc::ENOSYS as i64);

#[test]
fn docker_default_filter_in_a_real_process() {
    let got = in_child(Some(&programs(crate::runtime::privileges::DOCKER_CAPS)));
    assert!(got.getpid > 0, "{got:?}");
    assert_eq!(got.io_uring_setup, EPERM, "the profile's defaultErrnoRet");
    assert_eq!(got.x32_getpid, ENOSYS);
    assert_eq!(got.clone_newuser, EPERM);
    assert!(got.personality_query >= 0, "{got:?}");
    assert_eq!(got.personality_no_randomize, EPERM);
    assert_eq!(got.clone3, ENOSYS, "libc falls back to clone");
    assert_eq!(got.unshare_newuser, EPERM);
}

#[test]
fn sys_admin_lets_user_namespaces_through() {
    let baseline = in_child(None);
    assert!(
        baseline.clone_newuser == 1 && baseline.unshare_newuser == 0,
        "needs a kernel that allows user namespaces without a filter ({baseline:?})"
    );
    let mut caps = crate::runtime::privileges::DOCKER_CAPS.to_vec();
    caps.push(Capability::CAP_SYS_ADMIN);
    let got = in_child(Some(&programs(&caps)));
    assert_eq!(got.clone_newuser, 1, "{got:?}");
    assert_eq!(got.unshare_newuser, 0, "{got:?}");
    // clone3 reaches the kernel, which rejects the empty arguments itself.
    assert_ne!(got.clone3, ENOSYS, "{got:?}");
    // What CAP_SYS_ADMIN does not grant stays denied.
    assert_eq!(got.io_uring_setup, EPERM);
    assert_eq!(got.personality_no_randomize, EPERM);
    assert_eq!(got.x32_getpid, ENOSYS);
}
