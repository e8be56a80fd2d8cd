//! burrow's side of a running container: signal forwarding, and with a tty the pty pair,
//! raw mode on the user's terminal, stdin/stdout proxying and window-size changes.
//! Single-threaded: one poll loop over a signalfd, the pty master and stdin.
#![allow(unsafe_code)]

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::RuntimeError;

fn term_err(e: impl Into<std::io::Error>) -> RuntimeError {
    RuntimeError::Terminal { source: e.into() }
}

fn window_size(fd: BorrowedFd<'_>) -> Option<libc::winsize> {
    // SAFETY: winsize is plain old data; TIOCGWINSZ fills it and reads nothing else.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: `ws` outlives the call and has the type TIOCGWINSZ writes.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (rc == 0).then_some(ws)
}

fn set_window_size(fd: BorrowedFd<'_>, ws: &libc::winsize) {
    // SAFETY: TIOCSWINSZ only reads `ws`, which outlives the call.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws) };
}

/// A pty pair; the slave goes to the container, the master stays with burrow.
pub(crate) struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

impl Pty {
    /// Opens a pty sized like burrow's own terminal (stdin, else stdout).
    pub fn open() -> Result<Pty, RuntimeError> {
        let ws = window_size(std::io::stdin().as_fd())
            .or_else(|| window_size(std::io::stdout().as_fd()));
        let ws = ws.map(|w| nix::pty::Winsize {
            ws_row: w.ws_row,
            ws_col: w.ws_col,
            ws_xpixel: 0,
            ws_ypixel: 0,
        });
        let pair = nix::pty::openpty(ws.as_ref(), None).map_err(term_err)?;
        for fd in [&pair.master, &pair.slave] {
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .map_err(term_err)?;
        }
        Ok(Pty {
            master: pair.master,
            slave: pair.slave,
        })
    }
}

/// The user's terminal in raw mode; restored on drop (errors included).
pub(crate) struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// None when stdin is not a terminal.
    pub fn enter() -> Result<Option<RawMode>, RuntimeError> {
        let stdin = std::io::stdin();
        if !nix::unistd::isatty(stdin.as_fd()).unwrap_or(false) {
            return Ok(None);
        }
        let saved = termios::tcgetattr(stdin.as_fd()).map_err(term_err)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).map_err(term_err)?;
        Ok(Some(RawMode { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

const HANDLED: [Signal; 5] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGWINCH,
    Signal::SIGCHLD,
];

/// The signals burrow handles while a container runs, blocked and read from a signalfd.
/// Blocked before fork so none is lost; the previous mask comes back on drop.
pub(crate) struct Signals {
    fd: SignalFd,
    old: SigSet,
}

impl Signals {
    pub fn block() -> Result<Signals, RuntimeError> {
        let set: SigSet = HANDLED.into_iter().collect();
        let mut old = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old)).map_err(
            |e| RuntimeError::Process {
                step: "block signals".into(),
                source: e.into(),
            },
        )?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| RuntimeError::Process {
                step: "create a signalfd".into(),
                source: e.into(),
            })?;
        Ok(Signals { fd, old })
    }

    /// For a forked child: the mask burrow had before.
    pub fn restore_in_child(&self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Waits for `child` (which relays the container's status), forwarding SIGINT/SIGTERM/SIGHUP
/// to `container` and, with a pty, proxying stdin → master → stdout. Returns the exit code.
pub(crate) fn supervise(
    signals: &Signals,
    child: Pid,
    container: Pid,
    master: Option<&OwnedFd>,
    proxy_stdin: bool,
) -> Result<i32, RuntimeError> {
    let stdin = std::io::stdin();
    let mut stdin_open = proxy_stdin && master.is_some();
    let mut master_open = master.is_some();
    let mut status = None;
    let mut buf = [0u8; 8192];
    let mut master_file = match master {
        Some(m) => Some(std::fs::File::from(m.try_clone().map_err(term_err)?)),
        None => None,
    };
    loop {
        if let (Some(code), false) = (status, master_open) {
            return Ok(code);
        }
        let mut fds = vec![PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN)];
        if let (Some(m), true) = (&master_file, master_open) {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
        }
        let stdin_idx = fds.len();
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        // Once the container is gone, drain what the master still holds without blocking.
        let timeout = if status.is_some() {
            PollTimeout::ZERO
        } else {
            PollTimeout::NONE
        };
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => {
                return Err(RuntimeError::Process {
                    step: "poll".into(),
                    source: e.into(),
                });
            }
        }
        let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
        let sig_ready = ready(&fds[0]);
        let master_ready = master_open && fds.len() > 1 && ready(&fds[1]);
        let stdin_ready = stdin_open && ready(&fds[stdin_idx]);
        drop(fds);
        if sig_ready {
            while let Ok(Some(info)) = signals.fd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => {}
                    Ok(Signal::SIGWINCH) => {
                        if let (Some(m), Some(ws)) = (master, window_size(stdin.as_fd())) {
                            set_window_size(m.as_fd(), &ws);
                        }
                    }
                    Ok(sig) => {
                        tracing::debug!(?sig, pid = container.as_raw(), "forwarding signal");
                        let _ = nix::sys::signal::kill(container, sig);
                    }
                    Err(_) => {}
                }
            }
            if status.is_none() {
                match nix::sys::wait::waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                    Ok(ws) => status = exit_code(ws),
                    Err(nix::Error::ECHILD) => status = Some(125),
                    Err(_) => {}
                }
            }
        }
        if master_ready {
            match master_file.as_mut().map_or(Ok(0), |m| m.read(&mut buf)) {
                Ok(0) | Err(_) => master_open = false,
                Ok(n) => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
                }
            }
        } else if status.is_some() {
            master_open = false;
        }
        if stdin_ready {
            match stdin.lock().read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    if master_file
                        .as_mut()
                        .is_none_or(|m| m.write_all(&buf[..n]).is_err())
                    {
                        stdin_open = false;
                    }
                }
            }
        }
    }
}
