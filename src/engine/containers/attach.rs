//! Clients of a running container's stdio relay (`attach`, a foreground `run`), and the
//! relay's side of the engine. The relay itself is `crate::monitor::stdio`.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use super::{Containers, RUNNING};
use crate::engine::{EngineError, Result};
use crate::monitor::stdio;

/// What the relay is started with (`burrow __relay ID [--hold] --stderr-fd N`).
pub struct RelayArgs {
    /// Read no output until the first client says hello (or [`HOLD`] passed), so a
    /// foreground `run` sees everything from the first byte.
    pub hold: bool,
    /// The descriptor (inherited) of the container's stderr pipe.
    pub stderr_fd: i32,
}

impl Containers<'_> {
    /// The relay's side of the engine (`burrow __relay ID`): opens the container's log
    /// pipeline and attach socket, then hands them to [`stdio::serve`] until the container's
    /// output ends, and records what the log driver could not take. `ready` is called once
    /// the log driver is open and the socket listens: before then an error means the
    /// container must not start.
    pub fn relay(&self, id: &str, args: &RelayArgs, ready: &mut dyn FnMut()) -> Result<()> {
        let c = self.records.find(id)?;
        let config = self.records.config(&c)?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| EngineError::Io {
                what: "set up the stdio relay at",
                path,
                source,
            }
        };
        let log = self.open_log_pipe(&c, &config)?;
        crate::timing::mark("logdriver:open");
        let stderr_path = PathBuf::from(format!("/proc/self/fd/{}", args.stderr_fd));
        let stderr = std::fs::File::open(&stderr_path).map_err(io(&stderr_path))?;
        let sock_path = self.records.attach_socket_path(&c.id);
        if let Some(dir) = sock_path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let _ = std::fs::remove_file(&sock_path);
        let listener = UnixListener::bind(&sock_path).map_err(io(&sock_path))?;
        // Held while the relay lives, with its pid inside, so `rm -f` can end it.
        let _relay_lock = self.hold_relay_lock(&c.id)?;
        ready();
        let stats = stdio::serve(stdio::Setup {
            log,
            listener,
            stderr,
            hold: args.hold,
            size_file: self.records.attach_path(&c.id, "size"),
            tty: config.tty,
        })
        .map_err(io(&self.log_dir(&c.id)))?;
        self.record_log_drops(&c, &config, &stats);
        Ok(())
    }

    /// Connects to a running container's relay: output starts flowing once the client sends
    /// its hello. Returns the container id, whether it has a terminal, and the socket.
    pub fn attach(&self, key: &str) -> Result<(String, bool, UnixStream)> {
        let c = self.records.find(key)?;
        if c.status != RUNNING {
            return Err(EngineError::NotRunning(c.name));
        }
        let tty = self.records.config(&c)?.tty;
        let path = self.records.attach_socket_path(&c.id);
        let stream = UnixStream::connect(&path).map_err(|source| EngineError::Io {
            what: "connect to",
            path: path.clone(),
            source,
        })?;
        Ok((c.id, tty, stream))
    }

    /// The container's id and whether it has a terminal (`-t`).
    pub fn tty(&self, key: &str) -> Result<(String, bool)> {
        let c = self.records.find(key)?;
        let tty = self.records.config(&c)?.tty;
        Ok((c.id, tty))
    }

    /// Connects to the relay of a container this command just started (it may have exited,
    /// even been removed, already: the relay holds its output and exit code for us).
    pub fn connect_relay(&self, id: &str) -> Result<UnixStream> {
        let path = self.records.attach_socket_path(id);
        UnixStream::connect(&path).map_err(|source| EngineError::Io {
            what: "connect to",
            path,
            source,
        })
    }

    /// Lets a relay that holds the output for a client go on without one (the start failed).
    pub(super) fn release_relay(&self, id: &str) {
        if let Ok(mut s) = self.connect_relay(id) {
            let _ = s.write_all(&stdio::frame::encode(stdio::frame::HELLO, b""));
        }
    }
}
