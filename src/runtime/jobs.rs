//! Jobs: a closure run in a forked child, in a user namespace (a new one with [`in_userns`],
//! the network holder's with [`in_joined_userns`], or burrow's own with [`in_forked_job`]),
//! whose result comes back to the parent as JSON over the channel.
//!
//! [`in_joined_userns`] forks a child that joins the holder's user namespace (setns needs a
//! single-threaded process; the owner gets every capability there) and runs a job: from
//! there, threads may join the holder's network namespace and the containers' (owned by the
//! same user namespace) to connect them.

use std::fs::File;
use std::path::Path;

use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Pid};

use super::channel::{self, ToParent};
use super::process::{
    channel_err, die_with_parent, enter_userns, exit_now, fail, fork, join, map_child, wait_code,
};
use super::sys::{Nix, Syscall};
use super::{IdMapping, RuntimeError};

/// Runs `f` in a forked child that joined the user namespace at `userns` (as its root, with
/// every capability there); its result comes back as JSON. Call only while the process has
/// no other threads; `f` may start threads.
pub fn in_joined_userns<T: serde::Serialize + serde::de::DeserializeOwned>(
    userns: &Path,
    f: impl FnOnce() -> Result<T, String>,
) -> Result<T, RuntimeError> {
    in_forked_job(Some(userns), f)
}

/// Runs `f` in a forked child, in the user namespace at `userns` if given, else in burrow's
/// own (as [`in_joined_userns`]: the threads `f` starts end with the child).
pub fn in_forked_job<T: serde::Serialize + serde::de::DeserializeOwned>(
    userns: Option<&Path>,
    f: impl FnOnce() -> Result<T, String>,
) -> Result<T, RuntimeError> {
    let (from_child, to_parent) = channel::pipe()?;
    let parent = nix::unistd::getpid();
    match fork()? {
        ForkResult::Child => {
            drop(from_child);
            if !die_with_parent(parent) {
                exit_now(125);
            }
            if let Some(userns) = userns {
                let joining = "join the network holder's user namespace";
                let joined = join(
                    &Nix,
                    userns,
                    CloneFlags::CLONE_NEWUSER,
                    "the user namespace ",
                    joining,
                );
                if let Err(e) = joined {
                    fail(&to_parent, e);
                }
            }
            finish_job(f, &to_parent)
        }
        ForkResult::Parent { child } => {
            drop(to_parent);
            let result = job_result(child, &from_child);
            wait_code(child)?;
            result
        }
    }
}

/// The child's end of a job: runs `f` (a panic is an error), sends its JSON result, exits.
fn finish_job<T: serde::Serialize>(f: impl FnOnce() -> Result<T, String>, to_parent: &File) -> ! {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err("the job panicked".to_string()))
        .and_then(|v| {
            serde_json::to_value(v).map_err(|e| format!("cannot encode the result: {e}"))
        });
    let sent = channel::send(to_parent, &ToParent::JobDone(outcome));
    exit_now(if sent.is_ok() { 0 } else { 125 })
}

/// The parent's end of a job: the result the child sent, or why there is none.
fn job_result<T: serde::de::DeserializeOwned>(
    child: Pid,
    from_child: &File,
) -> Result<T, RuntimeError> {
    match channel::recv::<ToParent>(from_child).map_err(channel_err("the job's result"))? {
        Some(ToParent::JobDone(Ok(v))) => {
            serde_json::from_value(v).map_err(|e| RuntimeError::Job {
                message: format!("cannot decode the result: {e}"),
            })
        }
        Some(ToParent::JobDone(Err(message))) => Err(RuntimeError::Job { message }),
        Some(ToParent::Failed(f)) => Err(f.into()),
        _ => Err(RuntimeError::ChildVanished {
            pid: child.as_raw(),
            stage: "finishing the job",
        }),
    }
}

/// Runs `f` in a forked child inside a new user and mount namespace with `map` applied, as
/// uid 0 / gid 0; its result comes back as JSON. Call only while the process has no other
/// threads.
pub fn in_userns<T: serde::Serialize + serde::de::DeserializeOwned>(
    map: &IdMapping,
    f: impl FnOnce() -> Result<T, String>,
) -> Result<T, RuntimeError> {
    let (from_child, to_parent) = channel::pipe()?;
    let (from_parent, to_child) = channel::pipe()?;
    let parent = nix::unistd::getpid();
    let setgroups = map.setgroups_allowed();
    match fork()? {
        ForkResult::Child => {
            drop((from_child, to_child));
            if !die_with_parent(parent) {
                exit_now(125);
            }
            if let Err(e) = enter_userns(setgroups, &to_parent, &from_parent) {
                fail(&to_parent, e);
            }
            if let Err(source) = Nix.unshare(CloneFlags::CLONE_NEWNS) {
                let step = "create a mount namespace".into();
                fail(&to_parent, RuntimeError::Process { step, source });
            }
            let slave = nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE;
            if let Err(source) = Nix.mount(None, Path::new("/"), None, slave, None) {
                let step = "make / a slave mount".into();
                fail(&to_parent, RuntimeError::Process { step, source });
            }
            finish_job(f, &to_parent)
        }
        ForkResult::Parent { child } => {
            drop((to_parent, from_parent));
            let result = map_child(child, map, &from_child, &to_child)
                .and_then(|()| job_result(child, &from_child));
            let code = wait_code(child)?;
            tracing::debug!(pid = child.as_raw(), code, "user namespace job finished");
            result
        }
    }
}
