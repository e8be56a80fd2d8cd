//! `attach`: the terminal (or pipes) of this command joined to a detached container's
//! stdio through its relay, until the container stops or the detach keys are typed.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

use crate::engine::Engine;

#[derive(Args, Debug)]
pub struct AttachArgs {
    pub container: String,
    /// Key sequence that detaches, e.g. "ctrl-p,ctrl-q" (the default) or "ctrl-x"
    #[arg(long, value_name = "KEYS", default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// Do not send stdin
    #[arg(long)]
    pub no_stdin: bool,
}

/// Docker's detach-key syntax: comma-separated `ctrl-X`, or single characters.
fn parse_keys(spec: &str) -> Result<Vec<u8>> {
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

/// Raw mode on a terminal for as long as it lives.
struct Raw(Termios);

impl Raw {
    fn enter() -> Option<Raw> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(Raw(saved))
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.0);
    }
}

pub fn attach(engine: &mut Engine, a: AttachArgs) -> Result<i32> {
    let keys = parse_keys(&a.detach_keys)?;
    let (id, mut sock) = engine.attach(&a.container)?;
    let raw = Raw::enter();
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut stdin_open = !a.no_stdin;
    let mut matched = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let detached = loop {
        let (sock_ready, stdin_ready) = {
            let mut fds = vec![PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::from(100u16)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), fds.get(1).is_some_and(ready))
        };
        if sock_ready {
            match sock.read(&mut buf) {
                Ok(0) | Err(_) => break false,
                Ok(n) => {
                    stdout.write_all(&buf[..n])?;
                    stdout.flush()?;
                }
            }
        }
        if stdin_ready {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    // Bytes of a partial detach sequence are held back until it fails.
                    let mut send = Vec::with_capacity(n);
                    let mut done = false;
                    for &b in &buf[..n] {
                        if b == keys[matched] {
                            matched += 1;
                            if matched == keys.len() {
                                done = true;
                                break;
                            }
                        } else {
                            send.extend_from_slice(&keys[..matched]);
                            matched = 0;
                            send.push(b);
                        }
                    }
                    if !send.is_empty() {
                        sock.write_all(&send)?;
                    }
                    if done {
                        break true;
                    }
                }
            }
        }
        if !sock_ready && !stdin_ready && !engine.is_running(&id)? {
            // Give the relay a moment to pass on the last output.
            std::thread::sleep(Duration::from_millis(20));
            while let Ok(n) = {
                sock.set_nonblocking(true)?;
                sock.read(&mut buf)
            } {
                if n == 0 {
                    break;
                }
                stdout.write_all(&buf[..n])?;
            }
            stdout.flush()?;
            break false;
        }
    };
    drop(raw);
    if detached {
        eprintln!("\r\nread escape sequence");
        return Ok(0);
    }
    Ok(engine.wait(&id)?)
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
