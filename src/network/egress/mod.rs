//! The network holder's way out, `burrow __egress`: its entry point [`main`], and what its
//! two ways share. By default libslirp runs in this process ([`libslirp`]: the FFI in
//! `slirp.rs`, the tap made in the holder's namespace by `tap.rs`, the transparent TCP proxy
//! in `proxy.rs` with the SYN queue it holds in `nfqueue.rs`); with `--pasta`, pasta is
//! started and watched (`pasta.rs`). These files sit here, under the process that runs
//! them, rather than beside the holder: none of them runs in the holder.
//!
//! The holder's start (`holder/start_egress.rs`) spawns it with its stderr on
//! `RUN/network/egress.log`, where its diagnostics go through `tracing` (beside libslirp's
//! and pasta's own messages), and with two pipes: `exit`, whose end-of-file means the holder
//! is gone, and `ready`, where it says how its start went ([`Ready`]).
#![allow(unsafe_code)]

pub mod nfqueue;
pub mod pasta;
pub mod proxy;
pub mod slirp;
mod tap;

use std::error::Error;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use crate::runtime::{JobError, JobErrorKind};

/// The hidden subcommand that carries the holder's traffic out through libslirp, or watches
/// pasta doing it.
pub const COMMAND: &str = "__egress";

/// `burrow __egress --holder PID --exit-fd N --ready-fd N [--pasta PATH --pid-file PATH]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressArgs {
    /// The holder's pid: its namespaces get the tap.
    pub holder: i32,
    /// An inherited pipe whose end-of-file means the holder is gone.
    pub exit_fd: RawFd,
    /// An inherited pipe where [`Ready`] says how the start went.
    pub ready_fd: RawFd,
    /// Start this pasta program (and end it with the holder) instead of running libslirp.
    pub pasta: Option<PathBuf>,
    /// Where pasta writes its pid (given with `pasta`).
    pub pid_file: Option<PathBuf>,
}

/// The entry point of `burrow __egress`: gives the holder its way out until the holder is
/// gone. Its exit status: 0, [`slirp::NO_LIBRARY`] when libslirp is not installed (the
/// holder's start then tries slirp4netns), 1 on any other failure.
pub fn main(args: EgressArgs) -> i32 {
    super::diagnostics::init(std::io::stderr);
    let (exit, ready) = inherited(args.exit_fd, args.ready_fd);
    let _span = tracing::info_span!("egress", holder = args.holder).entered();
    match (args.pasta, args.pid_file) {
        (Some(pasta), Some(pid_file)) => pasta::serve(args.holder, exit, ready, &pasta, &pid_file),
        _ => libslirp(args.holder, exit, ready),
    }
}

/// libslirp in this process: the tap and the proxy's ends from the holder's namespace, the
/// proxy on a thread, libslirp on this one until `exit` reads end-of-file.
fn libslirp(holder: i32, exit: OwnedFd, ready: Ready) -> i32 {
    use slirp::{Library, MTU, NO_LIBRARY, SlirpError, TAP};
    let lib = match Library::load() {
        Ok(lib) => lib,
        Err(e) => {
            ready.failed(&e);
            return NO_LIBRARY;
        }
    };
    let tap = match tap::holder_ends(holder) {
        Ok(ends) => {
            if let Some(listener) = ends.listener {
                super::tcp_relay::allow_many_connections();
                let listener = std::net::TcpListener::from(listener);
                let queue = ends
                    .queue
                    .map(|fd| nfqueue::Queue::from_fd(fd, proxy::QUEUE));
                let _ = std::thread::Builder::new()
                    .name("egress-tcp".into())
                    .spawn(move || proxy::serve(listener, queue));
            }
            ends.tap
        }
        Err(e) => {
            ready.failed(&SlirpError::HolderEnds(e));
            return 1;
        }
    };
    tracing::info!(version = lib.version(), "libslirp carries {TAP}");
    let mut ready = Some(ready);
    let result = slirp::run(&lib, tap, exit.as_fd(), MTU, || {
        if let Some(r) = ready.take() {
            r.ready();
        }
    });
    match (result, ready) {
        (Ok(()), _) => 0,
        (Err(e), Some(unsaid)) => {
            unsaid.failed(&e);
            1
        }
        (Err(e), None) => {
            tracing::error!(error = &e as &(dyn Error + 'static), "the way out stops");
            1
        }
    }
}

/// Takes the exit and ready pipes `burrow __egress` inherited, close-on-exec from here on
/// (the jobs and programs it starts get neither).
fn inherited(exit_fd: RawFd, ready_fd: RawFd) -> (OwnedFd, Ready) {
    // SAFETY: the starting burrow passed these descriptors, open, for this process to own.
    let (exit, ready) = unsafe { (OwnedFd::from_raw_fd(exit_fd), File::from_raw_fd(ready_fd)) };
    for fd in [exit.as_fd(), ready.as_fd()] {
        let cloexec = nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC);
        let _ = nix::fcntl::fcntl(fd, cloexec);
    }
    (exit, Ready(ready))
}

/// The ready pipe's writing end: `1` once the way out carries traffic (what slirp4netns
/// writes on its own `--ready-fd` too), or `0` followed by why not, a [`JobError`] as JSON,
/// which the holder's start reads back ([`read_outcome`]) and shows with its causes.
pub struct Ready(File);

impl Ready {
    pub fn ready(mut self) {
        let _ = self.0.write_all(b"1");
    }

    /// Says why the way out did not start, in the log and on the pipe.
    pub fn failed(mut self, err: &(dyn Error + 'static)) {
        tracing::error!(error = err, "no way out");
        let mut said = b"0".to_vec();
        if serde_json::to_writer(&mut said, &JobError::from_error(err)).is_ok() {
            let _ = self.0.write_all(&said);
        }
    }
}

/// What a way-out helper said on its ready pipe.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Ready,
    /// `burrow __egress` said why it failed.
    Failed(JobError),
    /// It closed the pipe without a word, or said something else (a helper of its own,
    /// slirp4netns, says why on its stderr).
    Silent,
}

/// How much of a failure the holder's start reads from the ready pipe.
const MAX_REASON: u64 = 64 << 10;

/// Reads the ready pipe's first word: `1`, or `0` and a reason up to end-of-file (the helper
/// exits right after it).
pub fn read_outcome(mut pipe: impl Read) -> Outcome {
    let mut first = [0u8; 1];
    match pipe.read(&mut first) {
        Ok(1) if first[0] == b'1' => Outcome::Ready,
        Ok(1) if first[0] == b'0' => {
            let mut body = Vec::new();
            let _ = pipe.take(MAX_REASON).read_to_end(&mut body);
            Outcome::Failed(serde_json::from_slice(&body).unwrap_or_else(|_| {
                let text = String::from_utf8_lossy(&body).trim().to_string();
                JobError::message(JobErrorKind::Failed { errno: None }, text)
            }))
        }
        _ => Outcome::Silent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> (File, Ready) {
        let (r, w) = std::io::pipe().unwrap();
        (
            File::from(OwnedFd::from(r)),
            Ready(File::from(OwnedFd::from(w))),
        )
    }

    #[test]
    fn the_ready_pipe_says_ready_or_why_not_with_its_causes() {
        let (r, w) = pipe();
        w.ready();
        assert_eq!(read_outcome(r), Outcome::Ready);

        let (r, w) = pipe();
        let why = slirp::SlirpError::Tap(std::io::Error::from_raw_os_error(libc::ENODEV));
        w.failed(&why);
        let Outcome::Failed(reason) = read_outcome(r) else {
            panic!("no reason")
        };
        assert_eq!(reason.errno(), Some(libc::ENODEV));
        assert_eq!(
            reason.to_string(),
            "the tap device failed (No such device (os error 19)); its network namespace may be gone"
        );

        // slirp4netns closes its end without a word when it fails.
        let (r, w) = pipe();
        drop(w);
        assert_eq!(read_outcome(r), Outcome::Silent);
    }
}
