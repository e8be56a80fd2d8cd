//! The client side of a container's stdio: `attach`, and the foreground of `run` and
//! `start -a`. This command's terminal (or pipes) is joined to the container through its
//! relay until the container exits or the detach keys are typed.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use anyhow::{Result, bail};
use clap::Args;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;

use crate::engine::{Engine, EngineError, frame};
use crate::runtime::{RawMode, Signals};

#[derive(Args, Debug)]
pub struct AttachArgs {
    pub container: String,
    /// Key sequence that detaches, e.g. "ctrl-p,ctrl-q" (the default) or "ctrl-x"
    #[arg(long, value_name = "KEYS", default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// Do not send stdin
    #[arg(long)]
    pub no_stdin: bool,
    /// Forward the signals this command receives to the container (without a terminal)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub sig_proxy: bool,
}

/// How a client joins the container.
pub struct Session {
    /// Send this command's stdin to the container.
    pub stdin: bool,
    /// The container's stdin closes when ours ends (`run -i`, `start -ai`).
    pub stdin_once: bool,
    pub detach_keys: Vec<u8>,
    pub sig_proxy: bool,
}

/// Docker's detach-key syntax: comma-separated `ctrl-X`, or single characters.
pub fn parse_keys(spec: &str) -> Result<Vec<u8>> {
    spec.split(',')
        .map(|k| match k.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => {
                let b = c.as_bytes()[0].to_ascii_lowercase();
                match b {
                    b'a'..=b'z' => Ok(b - b'a' + 1),
                    b'@' => Ok(0),
                    b'[' => Ok(27),
                    b'\\' => Ok(28),
                    b']' => Ok(29),
                    b'^' => Ok(30),
                    b'_' => Ok(31),
                    _ => bail!("invalid detach key {k:?}: use ctrl-a..ctrl-z, ctrl-@, ctrl-[ … or one character"),
                }
            }
            None if k.len() == 1 => Ok(k.as_bytes()[0]),
            _ => bail!("invalid detach keys {spec:?}: use e.g. ctrl-p,ctrl-q"),
        })
        .collect()
}

pub fn attach(engine: &Engine, a: AttachArgs) -> Result<i32> {
    let session = Session {
        stdin: !a.no_stdin,
        stdin_once: false,
        detach_keys: parse_keys(&a.detach_keys)?,
        sig_proxy: a.sig_proxy,
    };
    let (id, tty, sock) = engine.containers().attach(&a.container)?;
    join(engine, &id, tty, sock, &session)
}

/// Writes one frame, or fails the session: the relay is gone.
fn send(sock: &mut UnixStream, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    sock.write_all(&frame::encode(kind, payload))
}

/// The client loop; returns the container's exit code (0 after a detach).
pub fn join(
    engine: &Engine,
    id: &str,
    tty: bool,
    mut sock: UnixStream,
    s: &Session,
) -> Result<i32> {
    // As Docker's: the detach keys only work with a terminal; without one stdin is data,
    // passed on whole (a binary piped to `run -i` may hold any bytes).
    let keys: &[u8] = if tty { &s.detach_keys } else { &[] };
    let mut handled = vec![Signal::SIGWINCH];
    if s.sig_proxy {
        // Forwarded to the container; without --sig-proxy they keep their usual effect here.
        handled.extend([Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP]);
    }
    let signals = Signals::block_set(&handled)?;
    crate::timing::mark("attach:hello");
    let hello = if s.stdin_once { "stdin-once" } else { "" };
    send(&mut sock, frame::HELLO, hello.as_bytes())?;
    if tty && let Some((rows, cols)) = crate::runtime::terminal_size() {
        send(
            &mut sock,
            frame::RESIZE,
            format!("{rows} {cols}").as_bytes(),
        )?;
    }
    let raw = if tty && s.stdin {
        RawMode::enter().ok().flatten()
    } else {
        None
    };
    let mut stdin = std::io::stdin().lock();
    let mut stdin_open = s.stdin;
    let mut frames = frame::Decoder::default();
    let mut matched = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let outcome = loop {
        let (sock_ready, stdin_ready, sig_ready) = {
            let mut fds = vec![
                PollFd::new(sock.as_fd(), PollFlags::POLLIN),
                PollFd::new(signals.fd().as_fd(), PollFlags::POLLIN),
            ];
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            (
                ready(&fds[0]),
                fds.get(2).is_some_and(ready),
                ready(&fds[1]),
            )
        };
        if sig_ready {
            while let Ok(Some(info)) = signals.fd().read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGWINCH) => {
                        if let (true, Some((rows, cols))) = (tty, crate::runtime::terminal_size()) {
                            let size = format!("{rows} {cols}");
                            let _ = send(&mut sock, frame::RESIZE, size.as_bytes());
                        }
                    }
                    Ok(sig) => {
                        // Docker's sig-proxy: the container gets what we got.
                        if let Err(e) = engine.containers().kill(id, sig.as_str()) {
                            tracing::debug!(%e, "cannot forward {sig}");
                        }
                    }
                    Err(_) => {}
                }
            }
        }
        if sock_ready {
            match sock.read(&mut buf) {
                Ok(0) | Err(_) => break None,
                Ok(n) => frames.push(&buf[..n]),
            }
            let mut exit = None;
            while let Some((kind, payload)) = frames.next_frame() {
                match kind {
                    frame::STDOUT => {
                        let mut out = std::io::stdout().lock();
                        out.write_all(&payload)?;
                        out.flush()?;
                    }
                    frame::STDERR => {
                        let mut err = std::io::stderr().lock();
                        err.write_all(&payload)?;
                        err.flush()?;
                    }
                    frame::EXIT => {
                        crate::timing::mark("attach:exit");
                        exit = std::str::from_utf8(&payload)
                            .ok()
                            .and_then(|c| c.parse::<i32>().ok());
                    }
                    _ => {}
                }
            }
            if let Some(code) = exit {
                break Some(code);
            }
        }
        if stdin_ready {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    let _ = send(&mut sock, frame::CLOSE_STDIN, b"");
                }
                Ok(n) => {
                    // Bytes of a partial detach sequence are held back until it fails.
                    let mut out = Vec::with_capacity(n);
                    let mut done = false;
                    for &b in &buf[..n] {
                        if keys.is_empty() {
                            out.push(b);
                        } else if b == keys[matched] {
                            matched += 1;
                            if matched == keys.len() {
                                done = true;
                                break;
                            }
                        } else {
                            out.extend_from_slice(&keys[..matched]);
                            matched = 0;
                            out.push(b);
                        }
                    }
                    if !out.is_empty() {
                        let _ = send(&mut sock, frame::STDIN, &out);
                    }
                    if done {
                        drop(raw);
                        eprintln!("\r\nread escape sequence");
                        return Ok(0);
                    }
                }
            }
        }
    };
    drop(raw);
    drop(signals);
    match outcome {
        Some(code) => Ok(code),
        // The relay went away without a word: its monitor died. The state says the rest.
        None => match engine.containers().wait(id) {
            Ok(code) => Ok(code),
            Err(EngineError::NoSuchContainer(_)) => {
                bail!(
                    "container {} is gone and its exit status with it",
                    &id[..12]
                )
            }
            Err(e) => Err(e.into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_like_docker() {
        assert_eq!(parse_keys("ctrl-p,ctrl-q").unwrap(), [16, 17]);
        assert_eq!(parse_keys("ctrl-x,y").unwrap(), [24, b'y']);
        assert!(parse_keys("ctrl-").is_err());
        assert!(parse_keys("alt-x").is_err());
    }
}
