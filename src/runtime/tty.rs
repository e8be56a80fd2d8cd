//! The terminal of a container started with `-t`: the container's pid 1 opens a pty in the
//! container's own devpts and passes the master to burrow, which puts the user's terminal in
//! raw mode, proxies stdin/stdout, copies window-size changes and forwards signals.
//! Single-threaded: one poll loop over a signalfd, the pty master and stdin.
#![allow(unsafe_code)]

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::socket::{
    self, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use nix::sys::stat::Mode;

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

/// The size (rows, columns) of the terminal on burrow's stdin, if it is one.
pub fn terminal_size() -> Option<(u16, u16)> {
    let ws = window_size(std::io::stdin().as_fd())?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

fn winsize(rows: u16, cols: u16) -> libc::winsize {
    libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// "ROWS COLS" from a size file (see `ContainerSpec::tty_size_file`).
fn size_from_file(path: &Path) -> Option<libc::winsize> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    match (it.next(), it.next()) {
        (Some(Ok(rows)), Some(Ok(cols))) => Some(winsize(rows, cols)),
        _ => None,
    }
}

fn set_window_size(fd: BorrowedFd<'_>, ws: &libc::winsize) {
    // SAFETY: TIOCSWINSZ only reads `ws`, which outlives the call.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws) };
}

/// A pty from the container's own devpts instance. Opened by the container's pid 1 after
/// pivot_root, so `tty` inside names it (/dev/pts/0) and the container's /dev/pts lists it;
/// the master is then handed to burrow over a socket ([`send_master`]).
pub(crate) struct ContainerPty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    /// The slave's path inside the container, e.g. /dev/pts/0.
    pub slave_path: PathBuf,
}

fn setup_err(step: &str, path: &Path) -> impl FnOnce(nix::Error) -> RuntimeError {
    let (step, path) = (step.to_string(), path.to_path_buf());
    move |e| RuntimeError::Setup {
        step,
        path,
        source: e.into(),
    }
}

/// Opens a pty in the devpts mounted at /dev/pts, sized `size` (rows, columns) or else like
/// burrow's terminal (the inherited stdin, else stdout).
pub(crate) fn open_in_container(size: Option<(u16, u16)>) -> Result<ContainerPty, RuntimeError> {
    let ptmx = Path::new("/dev/pts/ptmx");
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master = nix::fcntl::open(ptmx, flags, Mode::empty())
        .map_err(setup_err("open the pty master", ptmx))?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads the int behind the pointer, which outlives the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(setup_err("unlock the pty from", ptmx)(nix::Error::last()));
    }
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int into `number`, which outlives the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut number) } < 0 {
        return Err(setup_err("read the pty number from", ptmx)(
            nix::Error::last(),
        ));
    }
    let slave_path = PathBuf::from(format!("/dev/pts/{number}"));
    // TIOCGPTPEER opens the slave from the master itself: no path lookup that the image could
    // redirect, and the right devpts instance by construction.
    // SAFETY: TIOCGPTPEER takes the open flags as an integer argument and returns a new fd.
    let raw = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags.bits()) };
    if raw < 0 {
        return Err(setup_err("open the pty slave", &slave_path)(
            nix::Error::last(),
        ));
    }
    // SAFETY: raw is a fresh descriptor that nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(raw) };
    // Burrow's own terminal's size; a detached container (whose monitor has no terminal)
    // gets the classic 80x24 rather than 0x0, which programs such as stty refuse.
    let ws = size
        .map(|(rows, cols)| winsize(rows, cols))
        .or_else(|| window_size(std::io::stdin().as_fd()))
        .or_else(|| window_size(std::io::stdout().as_fd()))
        .unwrap_or(libc::winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        });
    set_window_size(master.as_fd(), &ws);
    Ok(ContainerPty {
        master,
        slave,
        slave_path,
    })
}

/// The socket pair that carries the pty master from the container to burrow, as
/// (burrow's end, the container's end); both close on exec.
pub(crate) fn master_channel() -> Result<(OwnedFd, OwnedFd), RuntimeError> {
    socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(term_err)
}

/// Container side: passes the master over `sock` (SCM_RIGHTS).
pub(crate) fn send_master(sock: &OwnedFd, master: &OwnedFd) -> Result<(), RuntimeError> {
    send_fd(sock.as_fd(), master.as_fd()).map_err(term_err)
}

/// burrow's side: the master sent by [`send_master`]. The container sends it before execve,
/// so once exec succeeded it is waiting in the socket.
pub(crate) fn recv_master(sock: &OwnedFd) -> Result<OwnedFd, RuntimeError> {
    recv_fd(sock.as_fd()).map_err(term_err)?.ok_or_else(|| {
        term_err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the container sent no terminal",
        ))
    })
}

/// Passes `fd` over the Unix socket `sock` (SCM_RIGHTS, with one byte of data).
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> std::io::Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(b"m")],
        &cmsg,
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

/// The descriptor [`send_fd`] passed over `sock` (close-on-exec); None at end-of-file or when
/// the message carried none.
pub fn recv_fd(sock: BorrowedFd<'_>) -> std::io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = socket::recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel installed this descriptor for us just now; nothing else
            // owns it. Extra descriptors (never sent) would leak, not alias.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    Ok(None)
}

/// The user's terminal in raw mode; restored on drop (errors included).
pub struct RawMode {
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
pub struct Signals {
    fd: SignalFd,
    old: SigSet,
}

impl Signals {
    /// The signals a container's supervisor handles.
    pub fn block() -> Result<Signals, RuntimeError> {
        Signals::block_set(&HANDLED)
    }

    /// Blocks `signals` and reads them from a signalfd (an attached client blocks fewer:
    /// without --sig-proxy, ctrl-c keeps its usual effect on the client).
    pub fn block_set(signals: &[Signal]) -> Result<Signals, RuntimeError> {
        let set: SigSet = signals.iter().copied().collect();
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

    /// The signalfd to poll and read.
    pub fn fd(&self) -> &SignalFd {
        &self.fd
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
/// to `container` and, with a pty, proxying stdin → master → stdout. On SIGWINCH the master
/// takes the size of burrow's terminal, or else the one in `size_file`. Returns the exit code.
pub(crate) fn supervise(
    signals: &Signals,
    child: Pid,
    container: Pid,
    master: Option<&OwnedFd>,
    proxy_stdin: bool,
    size_file: Option<&Path>,
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
                        let ws = window_size(stdin.as_fd())
                            .or_else(|| size_file.and_then(size_from_file));
                        if let (Some(m), Some(ws)) = (master, ws) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_master_crosses_the_socket_and_still_drives_its_slave() {
        let pair = nix::pty::openpty(None, None).unwrap();
        let (ours, theirs) = master_channel().unwrap();
        send_master(&theirs, &pair.master).unwrap();
        drop((theirs, pair.master));
        let master = recv_master(&ours).unwrap();
        assert!(nix::unistd::isatty(&master).unwrap());
        // Received close-on-exec, like everything else burrow holds.
        let flags = nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert!(flags & libc::FD_CLOEXEC != 0);
        // Bytes written to the received master reach the slave's input.
        let mut raw = termios::tcgetattr(&pair.slave).unwrap();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&pair.slave, SetArg::TCSANOW, &raw).unwrap();
        // (The master stays open until the slave has read: closing it hangs the slave up.)
        let mut master = std::fs::File::from(master);
        master.write_all(b"x").unwrap();
        let mut byte = [0u8; 1];
        std::fs::File::from(pair.slave)
            .read_exact(&mut byte)
            .unwrap();
        assert_eq!(&byte, b"x");
        drop(master);
        // A closed peer that sent nothing is an error, not a hang.
        drop(ours);
        let (ours, theirs) = master_channel().unwrap();
        drop(theirs);
        assert!(matches!(
            recv_master(&ours),
            Err(RuntimeError::Terminal { .. })
        ));
    }
}
