//! Jobs: a closure run in a forked child, in a user namespace (a new one with [`in_userns`],
//! the network holder's with [`in_joined_userns`], or burrow's own with [`in_forked_job`]),
//! whose result comes back to the parent as JSON over the channel: its value, or its error
//! as a [`JobError`] (its kind and its chain of causes; see `job_error.rs`).
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
use super::job_error::{JobError, JobErrorKind};
use super::process::{
    channel_err, die_with_parent, enter_userns, exit_now, fail, fork, join, map_child, wait_code,
};
use super::sys::{Nix, Syscall};
use super::{IdMapping, RuntimeError};

/// Runs `f` in a forked child that joined the user namespace at `userns` (as its root, with
/// every capability there); its result comes back as JSON. Call only while the process has
/// no other threads; `f` may start threads.
pub fn in_joined_userns<T: serde::Serialize + serde::de::DeserializeOwned, E: Into<JobError>>(
    userns: &Path,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, RuntimeError> {
    in_forked_job(Some(userns), f)
}

/// Runs `f` in a forked child, in the user namespace at `userns` if given, else in burrow's
/// own (as [`in_joined_userns`]: the threads `f` starts end with the child).
pub fn in_forked_job<T: serde::Serialize + serde::de::DeserializeOwned, E: Into<JobError>>(
    userns: Option<&Path>,
    f: impl FnOnce() -> Result<T, E>,
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

/// The child's end of a job: runs `f` (a panic is an error), sends its JSON result or its
/// error with the error's chain (a [`JobError`]), exits.
fn finish_job<T: serde::Serialize, E: Into<JobError>>(
    f: impl FnOnce() -> Result<T, E>,
    to_parent: &File,
) -> ! {
    let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Err(_) => Err(JobError::message(
            JobErrorKind::Panicked,
            "the job panicked",
        )),
        Ok(Err(e)) => Err(e.into()),
        Ok(Ok(v)) => serde_json::to_value(v).map_err(|e| {
            JobError::message(
                JobErrorKind::Encode,
                format!("cannot encode the result: {e}"),
            )
        }),
    };
    let sent = channel::send(to_parent, &ToParent::JobDone(outcome));
    exit_now(if sent.is_ok() { 0 } else { 125 })
}

/// The parent's end of a job: the result the child sent, or why there is none.
fn job_result<T: serde::de::DeserializeOwned>(
    child: Pid,
    from_child: &File,
) -> Result<T, RuntimeError> {
    match channel::recv::<ToParent>(from_child).map_err(channel_err("the job's result"))? {
        Some(ToParent::JobDone(Ok(v))) => serde_json::from_value(v).map_err(|e| {
            RuntimeError::Job(JobError::message(
                JobErrorKind::Decode,
                format!("cannot decode the result: {e}"),
            ))
        }),
        Some(ToParent::JobDone(Err(job))) => Err(RuntimeError::Job(job)),
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
pub fn in_userns<T: serde::Serialize + serde::de::DeserializeOwned, E: Into<JobError>>(
    map: &IdMapping,
    f: impl FnOnce() -> Result<T, E>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_reads_a_jobs_error_with_its_kind_and_chain() {
        let (r, w) = channel::pipe().unwrap();
        let failed = std::io::Error::from_raw_os_error(libc::EEXIST);
        let sent = [
            ToParent::JobDone(Err(JobError::from(failed))),
            ToParent::JobDone(Ok(serde_json::json!("not a number"))),
        ];
        for msg in &sent {
            channel::send(&w, msg).unwrap();
        }
        drop(w);
        let child = Pid::from_raw(4242);

        let err = job_result::<()>(child, &r).unwrap_err();
        let RuntimeError::Job(job) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(
            job.kind(),
            JobErrorKind::Failed {
                errno: Some(libc::EEXIST)
            }
        );
        assert_eq!(
            crate::errors::render_chain(&err),
            "the job in the user namespace failed: File exists (os error 17)"
        );
        assert_eq!(err.to_string(), crate::errors::render_chain(&err));

        let err = job_result::<u32>(child, &r).unwrap_err();
        assert!(
            matches!(&err, RuntimeError::Job(job) if job.kind() == JobErrorKind::Decode),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("the job in the user namespace failed: cannot decode the result: "),
            "{err}"
        );

        let err = job_result::<u32>(child, &r).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the container process (pid 4242) exited before finishing the job"
        );
    }
}
