//! The network holder's namespaces: [`start_holder`] makes the process that keeps them.
//!
//! Process tree of [`start_holder`]:
//! ```text
//! burrow (P)        writes the holder's id maps, returns its pid
//!  └─ C (fork)      setsid, forks H, exits (so H is nobody's child but init's)
//!      └─ H (fork)  unshare(NEWUSER) → P maps ids → root in it; unshare(NEWNET), `lo` up;
//!                   execve of the holder program, which keeps both namespaces alive and
//!                   gets one descriptor made before unshare(NEWNET): a socket in the
//!                   host's network namespace
//! ```
//! Jobs that later run in the holder's user namespace are `jobs.rs`'s
//! ([`super::jobs::in_joined_userns`]).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::fd::BorrowedFd;
use std::path::Path;

use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Pid};

use super::channel::{self, ToParent};
use super::process::{
    channel_err, enter_userns, exit_now, fail, fork, map_child, process_err, wait_code,
};
use super::sys::{Nix, Syscall};
use super::{IdMapping, RuntimeError, container};

/// Starts the holder: a process in a new user namespace (ids mapped with `map`) and a new
/// network namespace, running `exe args` there. Returns its pid. Call only while the process
/// has no other threads.
/// `keep` are descriptors the holder program inherits (their numbers are in `args`).
pub fn start_holder(
    map: &IdMapping,
    exe: &Path,
    args: &[&str],
    keep: &[BorrowedFd<'_>],
) -> Result<i32, RuntimeError> {
    let cstring = |b: &[u8]| {
        CString::new(b).map_err(|_| process_err("name the holder program")(nix::Error::EINVAL))
    };
    let exe_c = cstring(exe.as_os_str().as_encoded_bytes())?;
    let mut argv = vec![exe_c.clone()];
    for a in args {
        argv.push(cstring(a.as_bytes())?);
    }
    let (from_child, to_parent) = channel::pipe()?;
    let (from_parent, to_child) = channel::pipe()?;
    let setgroups = map.setgroups_allowed();
    match fork()? {
        ForkResult::Child => {
            drop((from_child, to_child));
            let _ = nix::unistd::setsid();
            match fork() {
                Ok(ForkResult::Parent { .. }) => exit_now(0),
                Err(e) => fail(&to_parent, e),
                Ok(ForkResult::Child) => {}
            }
            let me = nix::unistd::getpid().as_raw();
            let _ = channel::send(&to_parent, &ToParent::ContainerPid(me));
            if let Err(e) = enter_userns(setgroups, &to_parent, &from_parent) {
                fail(&to_parent, e);
            }
            if let Err(source) = Nix.unshare(CloneFlags::CLONE_NEWNET) {
                let step = "create the holder's network namespace".into();
                fail(&to_parent, RuntimeError::Process { step, source });
            }
            if let Err(e) = Nix.loopback_up() {
                fail(&to_parent, e);
            }
            if let Err(e) = container::dev_null_onto(&[0, 1, 2]) {
                fail(&to_parent, e);
            }
            let _ = nix::unistd::chdir("/");
            for fd in keep {
                let inherit = nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty());
                if let Err(e) = nix::fcntl::fcntl(fd, inherit) {
                    fail(
                        &to_parent,
                        process_err("pass a descriptor to the network holder")(e),
                    );
                }
            }
            let _ = channel::send(&to_parent, &ToParent::JobDone(Ok(serde_json::Value::Null)));
            let err = nix::unistd::execv(&exe_c, &argv).unwrap_err();
            fail(&to_parent, process_err("execute the network holder")(err))
        }
        ForkResult::Parent { child } => {
            drop((to_parent, from_parent));
            // C exits once it forked H.
            wait_code(child)?;
            let holder = match channel::recv::<ToParent>(&from_child)
                .map_err(channel_err("the holder's pid"))?
            {
                Some(ToParent::ContainerPid(pid)) => Pid::from_raw(pid),
                Some(ToParent::Failed(f)) => return Err(f.into()),
                _ => {
                    return Err(RuntimeError::ChildVanished {
                        pid: child.as_raw(),
                        stage: "starting the network holder",
                    });
                }
            };
            let started =
                map_child(holder, map, &from_child, &to_child).and_then(
                    |()| match channel::recv::<ToParent>(&from_child)
                        .map_err(channel_err("the holder's status"))?
                    {
                        Some(ToParent::JobDone(_)) => Ok(holder.as_raw()),
                        Some(ToParent::Failed(f)) => Err(f.into()),
                        _ => Err(RuntimeError::ChildVanished {
                            pid: holder.as_raw(),
                            stage: "creating the holder's namespaces",
                        }),
                    },
                );
            if started.is_err() {
                let _ = nix::sys::signal::kill(holder, nix::sys::signal::Signal::SIGKILL);
            }
            started
        }
    }
}
