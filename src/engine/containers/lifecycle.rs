//! The commands that act on a container's life: stop, kill, wait, restart, rename,
//! prune, `system restore`, exec and top.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::{Containers, RESTARTING, RUNNING};
use crate::engine::lock::FileLock;
use crate::engine::{EngineError, Result};
use crate::monitor;
use crate::runtime::proc;
use crate::state::{self, ContainerRecord};

/// Docker's default for `stop -t`.
const DEFAULT_STOP_TIMEOUT: u32 = 10;
/// How often waiting commands look at the state again, at most.
pub(super) const POLL: Duration = Duration::from_millis(20);

/// Sleeps between looks at something that usually changes within milliseconds: 1 ms at
/// first, doubling up to [`POLL`].
pub(super) struct Pacer(Duration);

impl Pacer {
    pub(super) fn new() -> Pacer {
        Pacer(Duration::from_millis(1))
    }

    pub(super) fn pause(&mut self) {
        std::thread::sleep(self.0);
        self.0 = (self.0 * 2).min(POLL);
    }
}
/// How long `stop` waits for the monitor to record an exit after SIGKILL.
const AFTER_KILL: Duration = Duration::from_secs(10);

impl Containers<'_> {
    pub(super) fn hold_relay_lock(&self, id: &str) -> Result<FileLock> {
        let path = self.records.relay_lock_path(id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| EngineError::Io {
                what: "create",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let lock = FileLock::exclusive(&path)?;
        std::fs::write(&path, std::process::id().to_string()).map_err(|source| {
            EngineError::Io {
                what: "write",
                path: path.clone(),
                source,
            }
        })?;
        Ok(lock)
    }

    /// Ends the relay of a container being removed: what it still holds for the log driver
    /// goes with the container (a slow or hostile driver must not outlive `rm -f`).
    pub(super) fn end_relay(&self, id: &str) {
        let path = self.records.relay_lock_path(id);
        let until = Instant::now() + Duration::from_secs(2);
        let mut pacer = Pacer::new();
        while path.exists() && matches!(FileLock::try_exclusive(&path), Ok(None)) {
            let pid = std::fs::read_to_string(&path)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok());
            // Only a process that is this container's relay (the pid may have been reused).
            if let Some(pid) = pid {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                if args.contains(&&b"__relay"[..]) && args.contains(&id.as_bytes()) {
                    let _ =
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            if Instant::now() >= until {
                tracing::warn!(id, "the relay did not end");
                return;
            }
            pacer.pause();
        }
    }

    /// Sends `signal` to the container's pid 1, if it is still the process we started.
    fn signal_container(&self, c: &ContainerRecord, signal: Signal) -> Result<bool> {
        let Some(pid) = c.pid else { return Ok(false) };
        if !proc::is_same_process(pid, c.pid_start) {
            return Ok(false);
        }
        match nix::sys::signal::kill(Pid::from_raw(pid), signal) {
            Ok(()) => Ok(true),
            Err(nix::errno::Errno::ESRCH) => Ok(false),
            Err(e) => Err(EngineError::Signal {
                name: c.name.clone(),
                signal: signal.to_string(),
                source: e.into(),
            }),
        }
    }

    /// `stop`: the stop signal, then SIGKILL after the timeout; the restart policy is
    /// told to leave the container stopped. Returns the container id.
    pub fn stop(&self, key: &str, timeout: Option<u32>) -> Result<String> {
        let c = self.records.find(key)?;
        let _span = tracing::info_span!("stop", container = %&c.id[..12]).entered();
        self.state
            .write(|tx| state::request_stop(tx, &c.id).map(|_| ()))?;
        if c.status != RUNNING && c.status != RESTARTING {
            return Ok(c.id);
        }
        let config = self.records.config(&c)?;
        let signal = monitor::parse_signal(&config.stop_signal).unwrap_or(Signal::SIGTERM);
        let timeout = timeout
            .or(config.stop_timeout)
            .unwrap_or(DEFAULT_STOP_TIMEOUT);
        self.signal_container(&c, signal)?;
        if !self.wait_stopped(&c.id, Duration::from_secs(timeout.into()))? {
            tracing::debug!(timeout, "stop signal ignored; killing");
            let current = self.records.find(&c.id)?;
            self.signal_container(&current, Signal::SIGKILL)?;
            self.wait_stopped(&c.id, AFTER_KILL)?;
        }
        self.records.event(&c, "stop", &[]);
        Ok(c.id)
    }

    /// `kill -s SIGNAL`.
    pub fn kill(&self, key: &str, signal: &str) -> Result<String> {
        let sig = monitor::parse_signal(signal)
            .ok_or_else(|| EngineError::BadSignal(signal.to_string()))?;
        let c = self.records.find(key)?;
        if sig == Signal::SIGKILL {
            // Docker: kill is a deliberate stop; the restart policy must not undo it.
            self.state
                .write(|tx| state::request_stop(tx, &c.id).map(|_| ()))?;
        }
        if c.status != RUNNING || !self.signal_container(&c, sig)? {
            return Err(EngineError::NotRunning(c.name));
        }
        self.records
            .event(&c, "kill", &[("signal", (sig as i32).to_string())]);
        Ok(c.id)
    }

    /// Waits until the container is neither running nor restarting (or is gone), or
    /// `limit` passed.
    fn wait_stopped(&self, id: &str, limit: Duration) -> Result<bool> {
        let until = Instant::now() + limit;
        let mut pacer = Pacer::new();
        loop {
            let Some(c) = self.state.find_containers(id)?.pop() else {
                return Ok(true);
            };
            if !self.records.watched(id) || (c.status != RUNNING && c.status != RESTARTING) {
                return Ok(true);
            }
            if Instant::now() >= until {
                return Ok(false);
            }
            pacer.pause();
        }
    }

    /// `wait`: blocks until the container stops and returns its exit code.
    pub fn wait(&self, key: &str) -> Result<i32> {
        let c = self.records.find(key)?;
        let mut pacer = Pacer::new();
        loop {
            let now = self.records.find(&c.id)?;
            if now.status != RUNNING && now.status != RESTARTING {
                return Ok(now.exit_code.unwrap_or(0));
            }
            pacer.pause();
        }
    }

    /// `restart`: stop (with the timeout), then start again under a new monitor.
    pub fn restart(&self, key: &str, timeout: Option<u32>) -> Result<String> {
        let id = self.stop(key, timeout)?;
        self.wait_stopped(&id, AFTER_KILL)?;
        let id = self.start(&id)?;
        let c = self.records.find(&id)?;
        self.records.event(&c, "restart", &[]);
        Ok(id)
    }

    /// Kills a running container for `rm -f` and waits until its monitor let go of it.
    pub(super) fn kill_for_removal(&self, c: &ContainerRecord) -> Result<()> {
        self.state
            .write(|tx| state::request_stop(tx, &c.id).map(|_| ()))?;
        let until = Instant::now() + AFTER_KILL;
        let mut pacer = Pacer::new();
        while self.records.watched(&c.id) {
            // Re-read: the monitor may have restarted the container under a new pid.
            if let Some(current) = self.state.find_containers(&c.id)?.pop() {
                self.signal_container(&current, Signal::SIGKILL)?;
            }
            if Instant::now() >= until {
                return Err(EngineError::ContainerRunning(c.name.clone()));
            }
            pacer.pause();
        }
        self.end_relay(&c.id);
        Ok(())
    }

    pub fn rename(&self, key: &str, name: &str) -> Result<()> {
        if !super::names::valid(name) {
            return Err(EngineError::BadName(name.to_string()));
        }
        let c = self.records.find(key)?;
        self.state
            .write(|tx| state::rename_container(tx, &c.id, name))?;
        let renamed = self.records.find(&c.id)?;
        self.records
            .event(&renamed, "rename", &[("oldName", format!("/{}", c.name))]);
        Ok(())
    }

    /// `container prune`: removes every stopped container. Returns their ids.
    pub fn prune(&self) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for s in self.list(true)? {
            let status = s.record.status.as_str();
            if status != RUNNING && status != RESTARTING {
                removed.push(self.remove(&s.record.id, Default::default())?);
            }
        }
        Ok(removed)
    }

    /// `system restore` (e.g. from a crontab `@reboot` line): starts every container whose
    /// restart policy says it should be running and is not. Returns the started names.
    pub fn restore(&self) -> Result<Vec<(String, Result<String>)>> {
        let mut out = Vec::new();
        for s in self.list(true)? {
            let r = &s.record;
            if r.status == RUNNING || r.status == RESTARTING {
                continue;
            }
            if s.config.restart_policy.restores(r.stop_requested) {
                let outcome = self.start(&r.id);
                out.push((r.name.clone(), outcome));
            }
        }
        Ok(out)
    }
}

/// What `exec` asks for, before the container's own settings are merged in.
#[derive(Debug, Default, Clone)]
pub struct ExecOptions {
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub detach: bool,
}

impl Containers<'_> {
    /// The host pid of a running container's pid 1, checked against its start time.
    fn running_pid(&self, key: &str) -> Result<(ContainerRecord, i32)> {
        let c = self.records.find(key)?;
        match c.pid {
            Some(pid) if c.status == RUNNING && proc::is_same_process(pid, c.pid_start) => {
                Ok((c, pid))
            }
            _ => Err(EngineError::NotRunning(c.name)),
        }
    }

    /// `exec`: runs a command inside a running container; returns its exit code.
    pub fn exec(&self, key: &str, opts: &ExecOptions) -> Result<i32> {
        let (c, pid) = self.running_pid(key)?;
        let _span = tracing::info_span!("exec", container = %&c.id[..12]).entered();
        let config = self.records.config(&c)?;
        let env = super::spec::apply_env(&config.env, &opts.env, &|k| std::env::var(k).ok())?;
        let cwd = match opts.workdir.as_deref().filter(|w| !w.is_empty()) {
            Some(w) if !w.starts_with('/') => {
                return Err(EngineError::RelativeWorkdir(w.to_string()));
            }
            Some(w) => w.to_string(),
            None => config.working_dir.clone(),
        };
        let spec = crate::runtime::ExecSpec {
            args: opts.command.clone(),
            env,
            cwd,
            user: opts
                .user
                .clone()
                .or_else(|| Some(config.user.clone()))
                .filter(|u| !u.is_empty()),
            tty: opts.tty,
            stdin: opts.interactive,
            detach: opts.detach,
        };
        Ok(crate::runtime::exec(pid, &spec, self.ids.map())?)
    }

    /// `top`: the processes of a running container as the host sees them.
    pub fn top(&self, key: &str) -> Result<Vec<crate::runtime::ProcessInfo>> {
        let (_, pid) = self.running_pid(key)?;
        Ok(crate::runtime::container_processes(pid)?)
    }
}
