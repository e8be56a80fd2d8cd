//! Containers as recorded: finding one by name or id, the truth about whether it still runs
//! (its lock), and the files beside its record. Both the containers and the networks
//! services look containers up through here, so neither needs the other for that.
//!
//! A monitor (or a foreground `start`) holds an exclusive lock on the container's `lock`
//! file for as long as the container runs, so any other burrow can tell a live container
//! from one whose monitor died (the lock vanishes with the process) without trusting a pid.

use std::path::PathBuf;

use super::config::Paths;
use super::containers::{EXITED, RESTARTING, RUNNING};
use super::lock::FileLock;
use super::spec::ContainerConfig;
use super::{EngineError, Result, now_unix};
use crate::state::{self, ContainerRecord, State};

#[derive(Clone, Copy)]
pub struct Records<'e> {
    pub(super) paths: &'e Paths,
    pub(super) state: &'e State,
}

impl Records<'_> {
    /// Finds one container by name, id or unique id prefix, repairing a stale "running"
    /// status left by a burrow that died.
    pub fn find(&self, key: &str) -> Result<ContainerRecord> {
        let mut found = self.state.find_containers(key)?;
        match found.len() {
            0 => Err(EngineError::NoSuchContainer(key.to_string())),
            1 => self.repair(found.remove(0)),
            n => Err(EngineError::Ambiguous {
                key: key.into(),
                count: n,
                what: "container",
            }),
        }
    }

    /// The record as it is now, without repairing it; None once the container is gone.
    pub fn current(&self, id: &str) -> Result<Option<ContainerRecord>> {
        Ok(self.state.find_containers(id)?.pop())
    }

    /// A container recorded as running whose lock is free lost its monitor (or its
    /// foreground burrow): its processes died with it (they are tied to their parent), so
    /// record the truth. A pid is only signalled while its start time still matches, so a
    /// pid the kernel reused is never touched.
    pub fn repair(&self, mut c: ContainerRecord) -> Result<ContainerRecord> {
        if c.status != RUNNING && c.status != RESTARTING {
            return Ok(c);
        }
        if self.watched(&c.id) {
            return Ok(c);
        }
        tracing::warn!(container = %c.id, "the container's monitor is gone; marking it exited");
        if let Some(pid) = c
            .pid
            .filter(|p| crate::runtime::proc::is_same_process(*p, c.pid_start))
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        c.status = EXITED.into();
        c.exit_code = Some(137);
        c.error = Some("the container's monitor died; the container was killed with it".into());
        c.finished = Some(now_unix());
        c.pid = None;
        c.pid_start = None;
        c.monitor_pid = None;
        self.state.write(|tx| state::update_container(tx, &c))?;
        Ok(c)
    }

    pub fn config(&self, c: &ContainerRecord) -> Result<ContainerConfig> {
        serde_json::from_str(&c.config).map_err(|source| {
            EngineError::State(crate::state::StateError::Corrupt {
                what: "container",
                id: c.id.clone(),
                source,
            })
        })
    }

    /// A container's running pid (its pid 1 on the host), if it runs.
    pub fn pid_if_running(&self, c: ContainerRecord) -> Result<Option<i32>> {
        let c = self.repair(c)?;
        Ok(running_pid(&c))
    }

    /// Whether a monitor (or a foreground burrow) still holds the container's lock.
    pub fn watched(&self, id: &str) -> bool {
        let lock = self.lock_path(id);
        // A missing lock (or run dir, removed with the container) means nobody watches.
        lock.exists() && matches!(FileLock::try_exclusive(&lock), Ok(None))
    }

    /// The container's lock if nobody holds it: whoever has it runs the container.
    pub fn try_watch(&self, id: &str) -> Result<Option<FileLock>> {
        let run_dir = self.paths.container_run_dir(id);
        std::fs::create_dir_all(&run_dir).map_err(|source| EngineError::Io {
            what: "create",
            path: run_dir.clone(),
            source,
        })?;
        FileLock::try_exclusive(&self.lock_path(id))
    }

    fn lock_path(&self, id: &str) -> PathBuf {
        self.paths.container_run_dir(id).join("lock")
    }

    /// The relay's lock: held for the relay's life, its pid written inside.
    pub fn relay_lock_path(&self, id: &str) -> PathBuf {
        self.paths.container_run_dir(id).join("relay.lock")
    }

    /// `RUN/attach/<16 hex>.EXT`: a socket path must fit in 108 bytes, which
    /// `RUN/containers/<64 hex>/…` under a long runtime dir does not.
    pub fn attach_path(&self, id: &str, ext: &str) -> PathBuf {
        let short: String = id.chars().take(16).collect();
        self.paths
            .runtime
            .join("attach")
            .join(format!("{short}.{ext}"))
    }

    pub fn attach_socket_path(&self, id: &str) -> PathBuf {
        self.attach_path(id, "sock")
    }

    /// The monitor's own log (its stderr).
    pub fn container_log(&self, id: &str) -> PathBuf {
        self.paths.container_dir(id).join("container.log")
    }

    /// Records a container event (see [`super::events::container`]).
    pub fn event(&self, c: &ContainerRecord, action: &str, extra: &[(&str, String)]) {
        super::events::container(self.state, c, action, extra);
    }
}

/// The pid of a container recorded as running, while its start time still matches.
pub fn running_pid(c: &ContainerRecord) -> Option<i32> {
    c.pid
        .filter(|p| c.status == RUNNING && crate::runtime::proc::is_same_process(*p, c.pid_start))
}
