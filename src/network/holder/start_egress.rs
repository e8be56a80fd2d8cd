//! The holder's way out, started with the holder (in the command that starts it): `burrow
//! __egress` (libslirp in that process, or pasta watched by it) or slirp4netns, given the
//! holder's namespaces and two pipes (see [`egress`]).
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Egress, Holder, SetupError};
use crate::network::egress::slirp::{NO_LIBRARY, TAP};
use crate::network::egress::{Outcome, read_outcome};
use crate::runtime::{JobError, find_program};

/// The log of `burrow __egress` in `RUN/network`: its stderr.
pub const EGRESS_LOG: &str = "egress.log";

/// How a way-out helper failed to start (see [`start_helper`]).
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("cannot make a pipe")]
    Pipe(#[source] std::io::Error),
    #[error("cannot create {}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `burrow __egress` said why on the ready pipe.
    #[error("{}", exit_status(status))]
    Failed {
        status: Option<std::process::ExitStatus>,
        #[source]
        reason: JobError,
    },
    /// It exited without saying ready; `said` is the last line of its log.
    #[error("{status}: {said}")]
    Exited {
        status: std::process::ExitStatus,
        said: String,
    },
    /// It did not say ready in time (and was killed).
    #[error("{said}")]
    NoAnswer { said: String },
}

impl HelperError {
    /// The helper's exit code, when it exited.
    pub(super) fn code(&self) -> Option<i32> {
        match self {
            HelperError::Exited { status, .. } => status.code(),
            HelperError::Failed { status, .. } => status.and_then(|s| s.code()),
            _ => None,
        }
    }
}

/// `exit status: 1`, or what stands for none.
fn exit_status(status: &Option<std::process::ExitStatus>) -> String {
    status.map_or_else(|| "no exit status".to_string(), |s| s.to_string())
}

/// How long the way-out helper gets to configure the holder's `tap0`.
const SLIRP_READY: Duration = Duration::from_secs(10);

/// Gives the holder's namespace a way out: `tap0` (10.0.2.100/24, default route via
/// 10.0.2.2, which leads to the host's loopback: the ruleset closes it but to the networks
/// that open it), whose traffic a helper carries through ordinary sockets of the user's in
/// the host's network namespace. The helper is `burrow __egress` (libslirp, in-process) by
/// default, slirp4netns or pasta when configured (slirp4netns also when libslirp0 is not
/// installed); without any the networks work among themselves, with no way out (warned).
/// The helper ends when `exit` reads end-of-file, that is when the holder is gone; its
/// messages go to `dir/egress.log` (`burrow __egress`, with libslirp's or pasta's own) or
/// `dir/slirp4netns.log`.
pub(super) fn egress(
    holder: &Holder,
    exit: OwnedFd,
    dir: &Path,
    way: Egress,
) -> Result<(), SetupError> {
    let exit_fd = exit.as_raw_fd().to_string();
    let pid = holder.pid.to_string();
    let exe = || std::env::current_exe().map_err(SetupError::Exe);
    let failed = |helper| move |source| SetupError::Helper { helper, source };
    let egress_args = |ready: &str, more: &[String]| -> Vec<String> {
        let args = ["--holder", &pid, "--exit-fd", &exit_fd, "--ready-fd", ready];
        std::iter::once(crate::network::egress::COMMAND)
            .chain(args)
            .map(String::from)
            .chain(more.iter().cloned())
            .collect()
    };
    match way {
        Egress::Pasta => {
            let pasta = find_program("pasta").ok_or(SetupError::NoPasta)?;
            let more = [
                "--pasta".to_string(),
                pasta.display().to_string(),
                "--pid-file".to_string(),
                dir.join("pasta.pid").display().to_string(),
            ];
            return start_helper(&exe()?, &exit, &dir.join(EGRESS_LOG), |ready| {
                egress_args(ready, &more)
            })
            .map_err(failed("pasta"));
        }
        Egress::Libslirp => {
            let started = start_helper(&exe()?, &exit, &dir.join(EGRESS_LOG), |ready| {
                egress_args(ready, &[])
            });
            match started {
                Ok(()) => return Ok(()),
                Err(e) if e.code() == Some(NO_LIBRARY) => {
                    tracing::info!(
                        "libslirp0 is not installed: the network holder uses slirp4netns"
                    )
                }
                Err(e) => return Err(failed("libslirp")(e)),
            }
        }
        Egress::Slirp4netns => {}
    }
    let Some(slirp4netns) = find_program("slirp4netns") else {
        tracing::warn!(
            "neither libslirp0 nor slirp4netns is installed: containers on bridge networks reach each other but not the outside (install libslirp0 or slirp4netns)"
        );
        return Ok(());
    };
    let (userns, netns) = (holder.userns(), holder.netns());
    start_helper(&slirp4netns, &exit, &dir.join("slirp4netns.log"), |ready| {
        vec![
            "--configure".into(),
            "--mtu=65520".into(),
            "--enable-seccomp".into(),
            format!("--exit-fd={exit_fd}"),
            format!("--ready-fd={ready}"),
            format!("--userns-path={}", userns.display()),
            "--netns-type=path".into(),
            netns.display().to_string(),
            TAP.into(),
        ]
    })
    .map_err(failed("slirp4netns"))
}

/// Starts `program` in its own session with `args(ready fd)`, `exit` and a ready pipe
/// inherited, stderr to `log`, and waits up to [`SLIRP_READY`] for it to write `1` there.
/// On failure it is killed; the error is its exit status (if it exited) and why: what
/// `burrow __egress` said on the ready pipe, else the last line of its log.
fn start_helper(
    program: &Path,
    exit: &OwnedFd,
    log: &Path,
    args: impl FnOnce(&str) -> Vec<String>,
) -> Result<(), HelperError> {
    let (ready_r, ready_w) = nix::unistd::pipe().map_err(|e| HelperError::Pipe(e.into()))?;
    let log_file = File::create(log).map_err(|source| HelperError::Log {
        path: log.to_path_buf(),
        source,
    })?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args(&ready_w.as_raw_fd().to_string()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log_file);
    let (exit_fd, ready_fd) = (exit.as_raw_fd(), ready_w.as_raw_fd());
    // SAFETY: the closure only calls async-signal-safe functions (setsid, fcntl).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            nix::unistd::setsid()?;
            for fd in [exit_fd, ready_fd] {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| HelperError::Spawn {
        program: program.to_path_buf(),
        source,
    })?;
    drop(ready_w);
    // No thread: the caller forks next.
    let mut fds = [nix::poll::PollFd::new(
        ready_r.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let timeout =
        nix::poll::PollTimeout::try_from(SLIRP_READY).unwrap_or(nix::poll::PollTimeout::MAX);
    let answered = matches!(nix::poll::poll(&mut fds, timeout), Ok(1));
    let outcome = if answered {
        read_outcome(File::from(ready_r))
    } else {
        Outcome::Silent
    };
    if outcome == Outcome::Ready {
        return Ok(());
    }
    // A helper that closed the pipe without `1` is exiting: its exit code says why (libslirp's
    // NO_LIBRARY asks for the fallback), so it is not killed before it had the moment to exit.
    let mut status = None;
    if answered {
        for _ in 0..200 {
            status = child.try_wait().ok().flatten();
            if status.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if status.is_none() {
        let _ = child.kill();
        status = child.wait().ok();
    }
    if let Outcome::Failed(reason) = outcome {
        return Err(HelperError::Failed { status, reason });
    }
    let said = std::fs::read_to_string(log).unwrap_or_default();
    let said = said.lines().last().unwrap_or("no message").to_string();
    Err(match status {
        Some(status) => HelperError::Exited { status, said },
        None => HelperError::NoAnswer { said },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `script` with sh as a way-out helper: `$READY` is its ready pipe (written through
    /// /proc/self/fd: dash takes only one-digit descriptors after `>&`).
    fn helper(script: &str) -> (Result<(), HelperError>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let exit = OwnedFd::from(File::open("/dev/null").unwrap());
        let log = dir.path().join(EGRESS_LOG);
        let started = start_helper(Path::new("/bin/sh"), &exit, &log, |ready| {
            vec!["-c".into(), format!("READY={ready}; {script}")]
        });
        (started, dir)
    }

    #[test]
    fn a_helper_says_ready_or_why_not() {
        let (ready, _dir) = helper("printf 1 >/proc/self/fd/$READY");
        assert!(ready.is_ok(), "{ready:?}");

        // burrow __egress: `0` and a JobError, then its exit status.
        let reason = JobError::from(std::io::Error::from_raw_os_error(libc::ENODEV));
        let json = serde_json::to_string(&reason).unwrap();
        let (err, _dir) = helper(&format!(
            "printf '0%s' '{json}' >/proc/self/fd/$READY; exit 3"
        ));
        let err = err.unwrap_err();
        assert_eq!(err.code(), Some(3));
        let failed = SetupError::Helper {
            helper: "libslirp",
            source: err,
        };
        assert_eq!(
            crate::errors::render_chain(&failed),
            "libslirp did not configure the holder's network: exit status: 3: No such device (os error 19)"
        );

        // slirp4netns: nothing on the pipe; its last words are in its log.
        let (err, _dir) = helper("echo starting >&2; echo no tap here >&2; exit 1");
        let err = err.unwrap_err();
        assert!(matches!(err, HelperError::Exited { .. }), "{err:?}");
        assert_eq!(err.to_string(), "exit status: 1: no tap here");
    }
}
