//! The stdio relay: a process of its own beside each monitor (`burrow __relay ID`, so that
//! the monitor stays single-threaded for its forks). It holds the other ends of the pipes
//! the monitor gives the container for stdin, stdout and stderr; it appends the output to
//! the container's log (through its log driver's [`LogPipe`]), copies it to every client
//! attached on the container's socket (`RUN/attach/<id prefix>.sock`), and writes what
//! clients type to the container's stdin. It lives as long as the monitor holds the pipes.
//!
//! Both directions of the socket carry frames ([`frame`]): an 8-byte header (kind, three
//! zero bytes, big-endian payload length) and the payload, the shape of Docker's stdcopy
//! stream. The relay sends stdout, stderr and, after each run of the container, its exit
//! code; clients send hello, stdin, end of stdin and window sizes; the monitor sends the
//! exit code.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::logpipe::{LogPipe, Splitter, Stats};
use crate::plugin::Source;

/// Frame kinds.
pub mod frame {
    /// Client → relay: bytes for the container's stdin.
    pub const STDIN: u8 = 0;
    /// Relay → client: the container's output.
    pub const STDOUT: u8 = 1;
    pub const STDERR: u8 = 2;
    /// Monitor → relay → clients: the container exited; the payload is the code in ASCII.
    pub const EXIT: u8 = 3;
    /// Client → relay, first: output starts flowing to it. Payload flags: "stdin-once"
    /// (the container's stdin closes when this client's input ends, as for `run -i`).
    pub const HELLO: u8 = 4;
    /// Client → relay: its input ended.
    pub const CLOSE_STDIN: u8 = 5;
    /// Client → relay: the terminal's size, "ROWS COLS".
    pub const RESIZE: u8 = 6;

    pub const HEADER: usize = 8;

    pub fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).expect("frames are smaller than 4 GiB");
        let mut out = Vec::with_capacity(HEADER + payload.len());
        out.extend_from_slice(&[kind, 0, 0, 0]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Collects bytes from a stream and yields whole frames.
    #[derive(Default)]
    pub struct Decoder {
        buf: Vec<u8>,
    }

    impl Decoder {
        pub fn push(&mut self, bytes: &[u8]) {
            self.buf.extend_from_slice(bytes);
        }

        pub fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
            let header: [u8; HEADER] = self.buf.get(..HEADER)?.try_into().ok()?;
            let len = u32::from_be_bytes(header[4..].try_into().ok()?) as usize;
            if self.buf.len() < HEADER + len {
                return None;
            }
            let payload = self.buf[HEADER..HEADER + len].to_vec();
            self.buf.drain(..HEADER + len);
            Some((header[0], payload))
        }
    }
}

/// What a relay prints on stderr once it is ready.
pub const READY: &str = "relay ready";

/// How long a relay started for a foreground run keeps the output waiting for its client.
const HOLD: Duration = Duration::from_secs(10);

/// A connection to the relay.
struct Client {
    stream: UnixStream,
    frames: frame::Decoder,
    /// Said hello: gets the output.
    attached: bool,
    stdin_once: bool,
}

impl Client {
    fn new(stream: UnixStream) -> Client {
        Client {
            stream,
            frames: frame::Decoder::default(),
            attached: false,
            stdin_once: false,
        }
    }
}

/// What the engine hands the relay once the container's log driver is open.
pub struct Setup {
    /// The log driver's pipeline.
    pub log: LogPipe,
    /// The attach socket, bound.
    pub listener: UnixListener,
    /// The container's stderr pipe (its stdout pipe is the relay's stdin, and its stdin
    /// pipe the relay's stdout).
    pub stderr: std::fs::File,
    /// Read no output until the first client says hello (or [`HOLD`] passed), so a
    /// foreground `run` sees everything from the first byte.
    pub hold: bool,
    /// Where window sizes go for the monitor (`RUN/attach/<id prefix>.size`).
    pub size_file: PathBuf,
    /// The container has a terminal: its stdin stays open when a client goes, as Docker
    /// keeps it (a detached `run -it` can be attached again).
    pub tty: bool,
}

/// The relay's loop, until the container's output pipes close: returns what the log
/// driver could not take. The socket and size files are removed at the end.
pub fn serve(setup: Setup) -> std::io::Result<Stats> {
    let Setup {
        log,
        listener,
        stderr,
        hold,
        size_file,
        tty,
    } = setup;
    let mut log = Log {
        pipe: log,
        split: [Splitter::new(Source::Stdout), Splitter::new(Source::Stderr)],
    };
    let stdout = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let mut relay = Relay {
        outputs: [Some((frame::STDOUT, stdout)), Some((frame::STDERR, stderr))],
        input: Some(take_stdout()?),
        clients: Vec::new(),
        held: hold.then(|| Instant::now() + HOLD),
        pending_exit: None,
        size_file,
        monitor: nix::unistd::getppid(),
        tty,
    };
    let mut buf = vec![0u8; 64 * 1024];
    while relay.outputs.iter().any(Option::is_some) {
        relay.step(&listener, &mut log, &mut buf);
    }
    // The monitor's last word may still wait in the socket: it wrote, then exited.
    relay.last_words(&listener, &mut buf);
    relay.send_exit(&mut log);
    if let Ok(addr) = listener.local_addr()
        && let Some(path) = addr.as_pathname()
    {
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(&relay.size_file);
    let Log { pipe, mut split } = log;
    let mut rest = Vec::new();
    for s in &mut split {
        s.finish(&mut rest);
    }
    pipe.push(rest);
    Ok(pipe.finish())
}

/// The monitor's line to its relay, opened while the socket exists (removing an `--rm`
/// container unlinks it).
pub struct Line(pub Option<UnixStream>);

impl Line {
    /// Tells the relay (and so the attached clients) that a run ended with `code`.
    pub fn exited(&mut self, code: i32) {
        if let Some(s) = self.0.as_mut() {
            let _ = s.write_all(&frame::encode(frame::EXIT, code.to_string().as_bytes()));
        }
    }
}

/// The relay's stdout (the container's stdin) as a file of its own, with /dev/null left in
/// its place, so that dropping the file really closes the pipe.
fn take_stdout() -> std::io::Result<std::fs::File> {
    let ours = std::io::stdout().as_fd().try_clone_to_owned()?;
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    nix::unistd::dup2_stdout(&null)?;
    Ok(std::fs::File::from(ours))
}

fn readable(fd: &PollFd) -> bool {
    fd.revents().is_some_and(|r| !r.is_empty())
}

/// Reads what `fd` holds right now without waiting (pipes here are blocking).
fn read_ready(file: &mut std::fs::File, buf: &mut [u8]) -> Option<usize> {
    let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) if n > 0 && readable(&fds[0]) => file.read(buf).ok(),
        _ => None,
    }
}

/// The container's output on its way to the log driver.
struct Log {
    pipe: LogPipe,
    /// stdout's and stderr's.
    split: [Splitter; 2],
}

struct Relay {
    /// The container's stdout and stderr pipes, until each reaches end of file.
    outputs: [Option<(u8, std::fs::File)>; 2],
    /// The container's stdin; dropping it closes the pipe.
    input: Option<std::fs::File>,
    clients: Vec<Client>,
    /// Until when the output waits for a first client.
    held: Option<Instant>,
    /// An exit code to pass on once the output before it has been.
    pending_exit: Option<Vec<u8>>,
    size_file: PathBuf,
    monitor: nix::unistd::Pid,
    tty: bool,
}

impl Relay {
    fn step(&mut self, listener: &UnixListener, log: &mut Log, buf: &mut [u8]) {
        if self.held.is_some_and(|until| Instant::now() >= until) {
            self.held = None;
        }
        let reading = self.held.is_none();
        let timeout = match self.held {
            Some(until) => PollTimeout::try_from(until.saturating_duration_since(Instant::now()))
                .unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        let (out_ready, new_client, client_ready) = {
            let mut fds: Vec<PollFd> = Vec::new();
            let mut out_idx = [None, None];
            for (i, out) in self.outputs.iter().enumerate() {
                if let (Some((_, f)), true) = (out, reading) {
                    out_idx[i] = Some(fds.len());
                    fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
                }
            }
            let listen_idx = fds.len();
            fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
            fds.extend(
                self.clients
                    .iter()
                    .map(|c| PollFd::new(c.stream.as_fd(), PollFlags::POLLIN)),
            );
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => return,
                Err(e) => {
                    tracing::error!(%e, "relay poll failed");
                    self.outputs = [None, None];
                    return;
                }
            }
            (
                out_idx.map(|i| i.is_some_and(|i| readable(&fds[i]))),
                readable(&fds[listen_idx]),
                fds[listen_idx + 1..]
                    .iter()
                    .map(readable)
                    .collect::<Vec<_>>(),
            )
        };
        for (i, ready) in out_ready.into_iter().enumerate() {
            if ready {
                self.pump(i, log, buf, false);
            }
        }
        let mut gone = Vec::new();
        for (i, ready) in client_ready.into_iter().enumerate() {
            if ready && !self.serve(i, buf) {
                gone.push(i);
            }
        }
        for i in gone.into_iter().rev() {
            let c = self.clients.remove(i);
            if c.stdin_once {
                self.stdin_once_ended();
            }
        }
        if new_client && let Ok((stream, _)) = listener.accept() {
            self.clients.push(Client::new(stream));
        }
        if self.pending_exit.is_some() && self.held.is_none() {
            // Everything the container wrote before it exited is in the pipes by now.
            for i in 0..self.outputs.len() {
                self.pump(i, log, buf, true);
            }
            self.send_exit(log);
        }
    }

    /// Takes in what clients (the monitor among them) sent before the pipes closed.
    fn last_words(&mut self, listener: &UnixListener, buf: &mut [u8]) {
        if listener.set_nonblocking(true).is_ok() {
            while let Ok((stream, _)) = listener.accept() {
                let _ = stream.set_nonblocking(false);
                self.clients.push(Client::new(stream));
            }
        }
        for i in (0..self.clients.len()).rev() {
            let waiting = {
                let mut fds = [PollFd::new(
                    self.clients[i].stream.as_fd(),
                    PollFlags::POLLIN,
                )];
                matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
            };
            if waiting && !self.serve(i, buf) {
                self.clients.remove(i);
            }
        }
    }

    /// Moves output from pipe `i` to the log and the attached clients; `drain` reads until
    /// nothing is left instead of once.
    fn pump(&mut self, i: usize, log: &mut Log, buf: &mut [u8], drain: bool) {
        loop {
            let Some((kind, file)) = self.outputs[i].as_mut() else {
                return;
            };
            let kind = *kind;
            let n = if drain {
                match read_ready(file, buf) {
                    Some(n) => n,
                    None => return,
                }
            } else {
                match file.read(buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => 0,
                }
            };
            if n == 0 {
                // The monitor closed its end: this stream is over for good.
                self.outputs[i] = None;
                return;
            }
            let mut entries = Vec::new();
            log.split[i].push(&buf[..n], &mut entries);
            log.pipe.push(entries);
            let framed = frame::encode(kind, &buf[..n]);
            // A client that cannot take the output is dropped, not waited for.
            self.clients
                .retain_mut(|c| !c.attached || c.stream.write_all(&framed).is_ok());
            if !drain {
                return;
            }
        }
    }

    /// Handles what client `i` sent; false once it is gone.
    fn serve(&mut self, i: usize, buf: &mut [u8]) -> bool {
        let n = match self.clients[i].stream.read(buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        self.clients[i].frames.push(&buf[..n]);
        while let Some((kind, payload)) = self.clients[i].frames.next_frame() {
            match kind {
                frame::HELLO => {
                    let c = &mut self.clients[i];
                    c.attached = true;
                    c.stdin_once = payload.split(|&b| b == b',').any(|f| f == b"stdin-once");
                    self.held = None;
                }
                frame::STDIN => {
                    if let Some(input) = self.input.as_mut()
                        && input
                            .write_all(&payload)
                            .and_then(|()| input.flush())
                            .is_err()
                    {
                        self.input = None;
                    }
                }
                frame::CLOSE_STDIN => {
                    if self.clients[i].stdin_once {
                        self.stdin_once_ended();
                    }
                }
                frame::RESIZE => self.resize(&payload),
                frame::EXIT => self.pending_exit = Some(payload),
                _ => return false,
            }
        }
        true
    }

    /// The client whose input is the container's (`run -i`, `start -ai`) ended it or left:
    /// Docker closes the container's stdin then, unless the container has a terminal — a
    /// shell of `run -it` must still read what the next `attach` types.
    fn stdin_once_ended(&mut self) {
        if !self.tty {
            self.input = None;
        }
    }

    /// Hands a window size to the monitor, whose runtime sets it on the pty on SIGWINCH.
    fn resize(&self, size: &[u8]) {
        let unsynced = crate::fsutil::Atomic::UNSYNCED;
        if crate::fsutil::write_atomic(&self.size_file, size, unsynced).is_err() {
            return;
        }
        // Only while our parent is still the monitor: never signal whoever adopted us.
        if nix::unistd::getppid() == self.monitor {
            let _ = nix::sys::signal::kill(self.monitor, nix::sys::signal::Signal::SIGWINCH);
        }
    }

    /// Passes on an exit code once the log has what came before it.
    fn send_exit(&mut self, log: &mut Log) {
        if let Some(code) = self.pending_exit.take() {
            log.pipe.sync(Duration::from_secs(5));
            let framed = frame::encode(frame::EXIT, &code);
            self.clients
                .retain_mut(|c| !c.attached || c.stream.write_all(&framed).is_ok());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::frame;

    #[test]
    fn frames_survive_arbitrary_splits() {
        let mut wire = frame::encode(frame::STDOUT, b"hello\n");
        wire.extend(frame::encode(frame::EXIT, b"3"));
        wire.extend(frame::encode(frame::STDERR, b""));
        // Docker's stdcopy header: stream, three zero bytes, big-endian size.
        assert_eq!(&wire[..8], &[1, 0, 0, 0, 0, 0, 0, 6]);
        let mut d = frame::Decoder::default();
        let mut got = Vec::new();
        for b in wire.chunks(3) {
            d.push(b);
            while let Some(f) = d.next_frame() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            [
                (frame::STDOUT, b"hello\n".to_vec()),
                (frame::EXIT, b"3".to_vec()),
                (frame::STDERR, vec![]),
            ]
        );
    }
}
