//! The container's stdio while it runs detached, and `attach`.
//!
//! The monitor gives the container pipes for stdin and for stdout+stderr, and hands their
//! other ends to a relay (`burrow __relay ID`, a process of its own, so the monitor stays
//! single-threaded for its forks). The relay appends the output to the container's log,
//! copies it to every client attached on `RUN/containers/ID/attach.sock`, and writes what
//! clients type to the container's stdin. It lives as long as the monitor holds the pipes.
//! The socket is `RUN/attach/<id prefix>.sock`.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::container::RUNNING;
use super::{Engine, EngineError, Result};

impl Engine {
    /// `RUN/attach/<16 hex>.sock`: a socket path must fit in 108 bytes, which
    /// `RUN/containers/<64 hex>/…` under a long runtime dir does not.
    pub(super) fn attach_socket_path(&self, id: &str) -> PathBuf {
        let short: String = id.chars().take(16).collect();
        self.paths
            .runtime
            .join("attach")
            .join(format!("{short}.sock"))
    }

    /// The relay's loop: stdin is the container's output, stdout the container's input.
    pub fn relay(&mut self, id: &str) -> Result<()> {
        let c = self.find_container(id)?;
        let log_path = self.container_log(&c.id);
        let io = |path: &PathBuf| {
            let path = path.clone();
            move |source| EngineError::Io { path, source }
        };
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        let sock_path = self.attach_socket_path(&c.id);
        if let Some(dir) = sock_path.parent() {
            std::fs::create_dir_all(dir).map_err(io(&dir.to_path_buf()))?;
        }
        let _ = std::fs::remove_file(&sock_path);
        let listener = UnixListener::bind(&sock_path).map_err(io(&sock_path))?;
        let mut output = std::io::stdin().lock();
        let mut input = std::io::stdout().lock();
        let mut clients: Vec<UnixStream> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (out_ready, new_client, client_ready) = {
                let mut fds = vec![
                    PollFd::new(output.as_fd(), PollFlags::POLLIN),
                    PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                ];
                fds.extend(
                    clients
                        .iter()
                        .map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN)),
                );
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(io(&sock_path)(e.into())),
                }
                let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                (
                    ready(&fds[0]),
                    ready(&fds[1]),
                    fds[2..].iter().map(ready).collect::<Vec<_>>(),
                )
            };
            if out_ready {
                match output.read(&mut buf) {
                    // The monitor closed its ends: the container is gone for good.
                    Ok(0) => break,
                    Ok(n) => {
                        let _ = log.write_all(&buf[..n]);
                        // A client that cannot take the output is dropped, not waited for.
                        clients.retain_mut(|c| c.write_all(&buf[..n]).is_ok());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let mut gone = Vec::new();
            for (i, ready) in client_ready.iter().enumerate() {
                if !ready {
                    continue;
                }
                match clients[i].read(&mut buf) {
                    Ok(0) | Err(_) => gone.push(i),
                    Ok(n) => {
                        let _ = input.write_all(&buf[..n]).and_then(|()| input.flush());
                    }
                }
            }
            for i in gone.into_iter().rev() {
                clients.remove(i);
            }
            if new_client {
                if let Ok((stream, _)) = listener.accept() {
                    clients.push(stream);
                }
            }
        }
        let _ = std::fs::remove_file(&sock_path);
        Ok(())
    }

    /// Connects to a running container's relay for `attach`.
    pub fn attach(&mut self, key: &str) -> Result<(String, UnixStream)> {
        let c = self.find_container(key)?;
        if c.status != RUNNING {
            return Err(EngineError::NotRunning(c.name));
        }
        let path = self.attach_socket_path(&c.id);
        let stream = UnixStream::connect(&path).map_err(|source| EngineError::Io {
            path: path.clone(),
            source,
        })?;
        Ok((c.id, stream))
    }

    /// Whether the container still runs (for an attached client's loop).
    pub fn is_running(&mut self, id: &str) -> Result<bool> {
        Ok(self.find_container(id)?.status == RUNNING)
    }
}
