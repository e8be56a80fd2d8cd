//! The typed channel between burrow and its forked children: length-prefixed JSON messages
//! over CLOEXEC pipes, so an error before execve arrives as a [`ChildFailure`] value and
//! exec success shows as end-of-file.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::fcntl::OFlag;

use super::RuntimeError;
use super::job_error::JobError;

/// Child → parent.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum ToParent {
    /// The child unshared its user namespace: the parent may write the id maps.
    UserNsReady,
    /// The container's network namespace exists (`NetworkMode::Attached`): the parent may
    /// connect it before the command runs.
    NetnsReady,
    /// The container's pid 1, as seen from burrow's pid namespace.
    ContainerPid(i32),
    /// A job (`jobs.rs`) finished: its JSON value or its error.
    JobDone(Result<serde_json::Value, JobError>),
    Failed(ChildFailure),
}

/// Parent → child.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum ToChild {
    MapsWritten,
    /// The container's network namespace is connected.
    NetworkDone,
}

/// A [`RuntimeError`] raised in a child, in a form that crosses the pipe.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum ChildFailure {
    CommandNotFound {
        command: String,
    },
    CannotExecute {
        command: String,
        errno: i32,
    },
    ExecFailed {
        command: String,
        errno: i32,
    },
    UserNotFound {
        user: String,
    },
    GroupNotFound {
        group: String,
    },
    InvalidUser {
        user: String,
        reason: String,
    },
    UnmappedUser {
        uid: u32,
        gid: u32,
    },
    ReadUserDb {
        path: PathBuf,
        errno: i32,
    },
    Setup {
        step: String,
        path: PathBuf,
        errno: i32,
    },
    Seccomp {
        reason: String,
    },
    UnsafeOverlayPath {
        path: PathBuf,
    },
    /// A failed step, kept as its name and errno.
    Process {
        step: String,
        errno: i32,
    },
    /// Any other error (joining a namespace, a container gone, the terminal...), with its
    /// message and causes.
    Other(JobError),
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn io(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

impl From<RuntimeError> for ChildFailure {
    fn from(e: RuntimeError) -> Self {
        use RuntimeError as E;
        match e {
            E::CommandNotFound { command } => Self::CommandNotFound { command },
            E::CannotExecute { command, source } => Self::CannotExecute {
                command,
                errno: errno_of(&source),
            },
            E::ExecFailed { command, source } => Self::ExecFailed {
                command,
                errno: errno_of(&source),
            },
            E::UserNotFound { user } => Self::UserNotFound { user },
            E::GroupNotFound { group } => Self::GroupNotFound { group },
            E::InvalidUser { user, reason } => Self::InvalidUser { user, reason },
            E::UnmappedUser { uid, gid } => Self::UnmappedUser { uid, gid },
            E::ReadUserDb { path, source } => Self::ReadUserDb {
                path,
                errno: errno_of(&source),
            },
            E::Setup { step, path, source } => Self::Setup {
                step,
                path,
                errno: errno_of(&source),
            },
            E::Seccomp { reason } => Self::Seccomp { reason },
            E::UnsafeOverlayPath { path } => Self::UnsafeOverlayPath { path },
            E::Process { step, source } => Self::Process {
                step,
                errno: errno_of(&source),
            },
            other => Self::Other(JobError::from_error(&other)),
        }
    }
}

impl From<ChildFailure> for RuntimeError {
    fn from(f: ChildFailure) -> Self {
        use ChildFailure as F;
        match f {
            F::CommandNotFound { command } => Self::CommandNotFound { command },
            F::CannotExecute { command, errno } => Self::CannotExecute {
                command,
                source: io(errno),
            },
            F::ExecFailed { command, errno } => Self::ExecFailed {
                command,
                source: io(errno),
            },
            F::UserNotFound { user } => Self::UserNotFound { user },
            F::GroupNotFound { group } => Self::GroupNotFound { group },
            F::InvalidUser { user, reason } => Self::InvalidUser { user, reason },
            F::UnmappedUser { uid, gid } => Self::UnmappedUser { uid, gid },
            F::ReadUserDb { path, errno } => Self::ReadUserDb {
                path,
                source: io(errno),
            },
            F::Setup { step, path, errno } => Self::Setup {
                step,
                path,
                source: io(errno),
            },
            F::Seccomp { reason } => Self::Seccomp { reason },
            F::UnsafeOverlayPath { path } => Self::UnsafeOverlayPath { path },
            F::Process { step, errno } => Self::Process {
                step,
                source: io(errno),
            },
            F::Other(job) => Self::Child(job),
        }
    }
}

/// A CLOEXEC pipe as (read end, write end).
pub(crate) fn pipe() -> Result<(File, File), RuntimeError> {
    let (r, w): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| RuntimeError::Process {
            step: "create a pipe".into(),
            source: e.into(),
        })?;
    Ok((File::from(r), File::from(w)))
}

/// Writes one message in a single buffer (a 4-byte length, then JSON).
pub(crate) fn send<T: serde::Serialize>(mut w: &File, msg: &T) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
    let mut buf = len.to_le_bytes().to_vec();
    buf.extend_from_slice(&body);
    w.write_all(&buf)
}

/// Reads one message; `None` when every writer closed the pipe first.
pub(crate) fn recv<T: serde::de::DeserializeOwned>(mut r: &File) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < len.len() {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut body)?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_eof_is_none() {
        let (r, w) = pipe().unwrap();
        send(&w, &ToParent::ContainerPid(42)).unwrap();
        let failure = ChildFailure::CannotExecute {
            command: "/bin/x".into(),
            errno: libc::EACCES,
        };
        send(&w, &ToParent::Failed(failure)).unwrap();
        drop(w);
        assert!(matches!(
            recv::<ToParent>(&r).unwrap(),
            Some(ToParent::ContainerPid(42))
        ));
        let Some(ToParent::Failed(f)) = recv::<ToParent>(&r).unwrap() else {
            panic!("expected a failure")
        };
        let err = RuntimeError::from(f);
        assert_eq!(err.exit_code(), 126);
        assert!(
            matches!(&err, RuntimeError::CannotExecute { source, .. } if source.raw_os_error() == Some(libc::EACCES))
        );
        assert!(recv::<ToParent>(&r).unwrap().is_none());
    }

    #[test]
    fn failures_keep_their_variant_across_the_pipe() {
        let e = RuntimeError::UserNotFound { user: "foo".into() };
        let back = RuntimeError::from(ChildFailure::from(e));
        assert_eq!(
            back.to_string(),
            "unable to find user foo: no matching entries in passwd file"
        );
        let e = RuntimeError::Setup {
            step: "mount proc on".into(),
            path: "/x/proc".into(),
            source: io(libc::EPERM),
        };
        let back = RuntimeError::from(ChildFailure::from(e));
        assert_eq!(
            back.to_string(),
            "container setup failed: cannot mount proc on /x/proc"
        );
        // One without a variant of its own keeps its message and causes.
        let e = RuntimeError::JoinNamespace {
            pid: 7,
            kind: "pid",
            source: io(libc::EPERM),
        };
        let back = RuntimeError::from(ChildFailure::from(e));
        assert_eq!(
            crate::errors::render_chain(&back),
            "cannot join the pid namespace of container process 7: Operation not permitted (os error 1)"
        );
        assert_eq!(back.exit_code(), 125);
        let gone = RuntimeError::from(ChildFailure::from(RuntimeError::ContainerGone { pid: 7 }));
        assert_eq!(
            gone.to_string(),
            "container process 7 is gone (the container is not running)"
        );
    }
}
