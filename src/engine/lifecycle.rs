//! Detached containers: starting one under its monitor, the monitor's loop, and the
//! commands that act on a running container (stop, kill, wait, restart, rm -f).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::attach::RelayLine;
use super::container::{EXITED, RUNNING};
use super::lock::FileLock;
use super::{Engine, EngineError, Result};
use crate::monitor::{self, Backoff, Ready};
use crate::runtime::proc;
use crate::state::{self, ContainerRecord};

/// How the monitor runs (`burrow __monitor ID [--hold] [--tty-size ROWSxCOLS]`).
#[derive(Debug, Default, Clone)]
pub struct MonitorArgs {
    /// A client attaches right after the start: the relay holds the output for it.
    pub hold: bool,
    /// The size the container's terminal starts with.
    pub tty_size: Option<(u16, u16)>,
}

/// Status while the monitor waits out the restart delay.
pub const RESTARTING: &str = "restarting";

/// Docker's default for `stop -t`.
const DEFAULT_STOP_TIMEOUT: u32 = 10;
/// How often waiting commands look at the state again, at most.
const POLL: Duration = Duration::from_millis(20);

/// Sleeps between looks at something that usually changes within milliseconds: 1 ms at
/// first, doubling up to [`POLL`].
struct Pacer(Duration);

impl Pacer {
    fn new() -> Pacer {
        Pacer(Duration::from_millis(1))
    }

    fn pause(&mut self) {
        std::thread::sleep(self.0);
        self.0 = (self.0 * 2).min(POLL);
    }
}
/// How long `stop` waits for the monitor to record an exit after SIGKILL.
const AFTER_KILL: Duration = Duration::from_secs(10);

impl Engine {
    fn lock_path(&self, id: &str) -> PathBuf {
        self.paths.container_run_dir(id).join("lock")
    }

    /// The relay's lock: held for the relay's life, its pid written inside.
    fn relay_lock_path(&self, id: &str) -> PathBuf {
        self.paths.container_run_dir(id).join("relay.lock")
    }

    pub(super) fn hold_relay_lock(&self, id: &str) -> Result<FileLock> {
        let path = self.relay_lock_path(id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| EngineError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let lock = FileLock::exclusive(&path)?;
        std::fs::write(&path, std::process::id().to_string()).map_err(|source| {
            EngineError::Io {
                path: path.clone(),
                source,
            }
        })?;
        Ok(lock)
    }

    /// Ends the relay of a container being removed: what it still holds for the log driver
    /// goes with the container (a slow or hostile driver must not outlive `rm -f`).
    pub(super) fn end_relay(&self, id: &str) {
        let path = self.relay_lock_path(id);
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

    pub(super) fn container_log(&self, id: &str) -> PathBuf {
        self.paths.container_dir(id).join("container.log")
    }

    /// Starts a container under a new monitor process and returns once its command runs
    /// (or failed to). A running container is left alone, as Docker does.
    pub fn start_detached(&mut self, key: &str) -> Result<String> {
        self.start_monitored(key, &MonitorArgs::default())
    }

    /// Starts a container under a new monitor process, as [`Engine::start_detached`], with
    /// `args` for the monitor: a foreground run holds the output for its client.
    pub fn start_monitored(&mut self, key: &str, args: &MonitorArgs) -> Result<String> {
        let c = self.find_container(key)?;
        if c.status == RUNNING || c.status == RESTARTING {
            return Ok(c.id);
        }
        let _span = tracing::info_span!("start", container = %&c.id[..12]).entered();
        self.idmap_used();
        self.state
            .write(|tx| state::clear_stop_request(tx, &c.id))?;

        let log_path = self.container_log(&c.id);
        let io = |path: &PathBuf| {
            let path = path.clone();
            move |source| EngineError::Io { path, source }
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        let (ready_r, ready_w) = std::io::pipe().map_err(io(&log_path))?;
        let mut cmd = self.self_command();
        cmd.arg("__monitor").arg(&c.id);
        if args.hold {
            cmd.arg("--hold");
        }
        if let Some((rows, cols)) = args.tty_size {
            cmd.arg("--tty-size").arg(format!("{rows}x{cols}"));
        }
        cmd.stdin(Stdio::null()).stdout(ready_w).stderr(log);
        let child = cmd.spawn().map_err(io(&log_path))?;
        // Our copy of the write end went into `cmd`; drop it so EOF means the monitor is gone.
        drop(cmd);
        tracing::debug!(monitor = child.id(), "monitor spawned");
        match monitor::recv_ready(ready_r) {
            Some(Ready::Started { pid }) => {
                tracing::debug!(pid, "container started");
                Ok(c.id)
            }
            Some(Ready::Failed { code, message }) => {
                if args.hold {
                    self.release_relay(&c.id);
                }
                Err(EngineError::StartFailed {
                    name: c.name,
                    code,
                    message,
                })
            }
            None => {
                if args.hold {
                    self.release_relay(&c.id);
                }
                Err(EngineError::MonitorDied {
                    name: c.name,
                    log: log_path,
                })
            }
        }
    }

    /// This burrow binary with the options that make it see the same state as we do.
    pub(super) fn self_command(&self) -> Command {
        // The real path, not /proc/self/exe, so `ps` shows the monitor as burrow.
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        let mut cmd = Command::new(exe);
        cmd.arg("--root")
            .arg(&self.paths.data)
            .arg("--runroot")
            .arg(&self.paths.runtime);
        if let Some(config) = &self.global.config {
            cmd.arg("--config").arg(config);
        }
        if let Some(driver) = &self.global.storage_driver {
            cmd.arg("--storage-driver").arg(driver);
        }
        cmd
    }

    /// The monitor's body (`burrow __monitor ID`): runs the container, restarts it as its
    /// policy says, records every start and exit, and honours --rm. `ready` gets one
    /// message for the command that started us. Returns the monitor's exit code.
    pub fn monitor(
        &mut self,
        id: &str,
        args: &MonitorArgs,
        ready: &mut Option<File>,
    ) -> Result<i32> {
        self.tty_size = args.tty_size;
        let mut c = self.find_container(id)?;
        let _span = tracing::info_span!("monitor", container = %&c.id[..12]).entered();
        let Some(_watching) = self.take_watch(&c.id)? else {
            // Another monitor (or a foreground burrow) already runs it.
            if let Some(mut r) = ready.take() {
                let _ = monitor::send_ready(
                    &mut r,
                    &Ready::Started {
                        pid: c.pid.unwrap_or(0),
                    },
                );
            }
            return Ok(0);
        };
        let config = self.container_config(&c)?;
        let (_relay, mut relay_line) = self.start_relay(&c.id, config.interactive, args.hold)?;
        let mut backoff = Backoff::default();
        c.monitor_pid = Some(std::process::id() as i32);
        let code = loop {
            let began = Instant::now();
            let mut prober = None;
            let mut prober_cmd = config.healthcheck.as_ref().map(|_| self.self_command());
            let outcome = self.run_recorded(&mut c, &config, &mut |record| {
                if let Some(mut r) = ready.take() {
                    let pid = record.pid.unwrap_or(0);
                    let _ = monitor::send_ready(&mut r, &Ready::Started { pid });
                }
                if let Some(mut cmd) = prober_cmd.take() {
                    // The prober runs beside the monitor; it stops by itself once the
                    // container's pid 1 changes, and is killed below in any case.
                    prober = cmd
                        .arg("__health")
                        .arg(&record.id)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .spawn()
                        .inspect_err(|e| tracing::error!(%e, "cannot start the health prober"))
                        .ok();
                }
            })?;
            if let Some(mut p) = prober {
                let _ = p.kill();
                let _ = p.wait();
            }
            let ran_for = began.elapsed();
            let code = c.exit_code.unwrap_or(125);
            // Another command may have asked for a stop meanwhile.
            let latest = self.state.find_containers(&c.id)?.pop();
            c.stop_requested = latest.as_ref().is_some_and(|l| l.stop_requested);
            if let (Err(e), Some(mut r)) = (&outcome, ready.take()) {
                // The first start failed: say so to whoever is waiting, and stop here.
                let _ = monitor::send_ready(
                    &mut r,
                    &Ready::Failed {
                        code,
                        message: e.to_string(),
                    },
                );
                break code;
            }
            let restarts = u32::try_from(c.restart_count).unwrap_or(u32::MAX);
            if !config
                .restart_policy
                .should_restart(code, restarts, c.stop_requested)
            {
                break code;
            }
            let delay = backoff.next(ran_for);
            c.status = RESTARTING.into();
            self.state.write(|tx| state::update_container(tx, &c))?;
            relay_line.exited(code);
            if self.wait_unless_stopped(&c.id, delay)? {
                c.status = EXITED.into();
                self.state.write(|tx| state::update_container(tx, &c))?;
                break code;
            }
            c.restart_count += 1;
        };
        c.monitor_pid = None;
        self.state.write(|tx| state::update_container(tx, &c))?;
        // Removed before the lock is let go, so nobody sees a stopped --rm container.
        if config.auto_remove {
            self.remove_stopped(&c.id)?;
            self.container_event(&c, "destroy", &[]);
        }
        // Last, so a client that returns on it finds the container's final state.
        relay_line.exited(code);
        drop(_watching);
        Ok(code)
    }

    /// The container's lock if nobody holds it: whoever has it runs the container.
    pub(super) fn try_watch(&self, id: &str) -> Result<Option<FileLock>> {
        let run_dir = self.paths.container_run_dir(id);
        std::fs::create_dir_all(&run_dir).map_err(|source| EngineError::Io {
            path: run_dir.clone(),
            source,
        })?;
        FileLock::try_exclusive(&self.lock_path(id))
    }

    /// The container's lock, waiting a little for a previous monitor that is still
    /// writing its last record; None when another monitor really watches the container.
    fn take_watch(&self, id: &str) -> Result<Option<FileLock>> {
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            if let Some(lock) = self.try_watch(id)? {
                return Ok(Some(lock));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Gives the container (through this process's stdio, which it inherits) pipes whose
    /// other ends go to a new relay process. The relay exits once this process's ends close.
    fn start_relay(
        &self,
        id: &str,
        interactive: bool,
        hold: bool,
    ) -> Result<(std::process::Child, RelayLine)> {
        let io = |source| EngineError::Io {
            path: self.attach_socket_path(id),
            source,
        };
        let (out_r, out_w) = std::io::pipe().map_err(io)?;
        let (err_r, err_w) = std::io::pipe().map_err(io)?;
        let (status_r, status_w) = std::io::pipe().map_err(io)?;
        // The relay inherits the stderr pipe under its own number (std sets up only 0-2).
        let dup = |e: nix::Error| io(e.into());
        nix::fcntl::fcntl(
            &err_r,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .map_err(dup)?;
        let (relay_input, container_stdin): (Stdio, Option<std::io::PipeReader>) = if interactive {
            let (r, w) = std::io::pipe().map_err(io)?;
            (w.into(), Some(r))
        } else {
            (Stdio::null(), None)
        };
        let mut cmd = self.self_command();
        cmd.arg("__relay")
            .arg(id)
            .arg("--stderr-fd")
            .arg(std::os::fd::AsRawFd::as_raw_fd(&err_r).to_string());
        if hold {
            cmd.arg("--hold");
        }
        let child = cmd
            .stdin(out_r)
            .stdout(relay_input)
            .stderr(status_w)
            .spawn()
            .map_err(io)?;
        drop(cmd);
        drop(err_r);
        // The relay opens the log driver first: if it cannot, the container does not start.
        let mut status = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(status_r), &mut status);
        if status.trim_end() != super::RELAY_READY {
            let message = status.trim_end().trim_start_matches("burrow: ");
            return Err(EngineError::LogConfig(if message.is_empty() {
                "the log relay died while starting".to_string()
            } else {
                message.to_string()
            }));
        }
        match &container_stdin {
            Some(r) => nix::unistd::dup2_stdin(r).map_err(dup)?,
            None => {
                let null = std::fs::File::open("/dev/null").map_err(io)?;
                nix::unistd::dup2_stdin(&null).map_err(dup)?;
            }
        }
        nix::unistd::dup2_stdout(&out_w).map_err(dup)?;
        nix::unistd::dup2_stderr(&err_w).map_err(dup)?;
        // `run -d` returns once the container runs: by then `attach` must reach the relay.
        let until = Instant::now() + Duration::from_secs(5);
        let mut pacer = Pacer::new();
        let line = loop {
            match self.connect_relay(id) {
                Ok(s) => break Some(s),
                Err(e) if Instant::now() >= until => {
                    tracing::warn!(%e, "the relay does not answer");
                    break None;
                }
                Err(_) => pacer.pause(),
            }
        };
        Ok((child, RelayLine(line)))
    }

    /// Sleeps `delay` unless a stop is requested first; true when it was.
    fn wait_unless_stopped(&mut self, id: &str, delay: Duration) -> Result<bool> {
        let until = Instant::now() + delay;
        loop {
            let stopped = self
                .state
                .find_containers(id)?
                .pop()
                .is_none_or(|c| c.stop_requested);
            if stopped {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= until {
                return Ok(false);
            }
            std::thread::sleep(POLL.min(until - now));
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
    pub fn stop(&mut self, key: &str, timeout: Option<u32>) -> Result<String> {
        let c = self.find_container(key)?;
        let _span = tracing::info_span!("stop", container = %&c.id[..12]).entered();
        self.state
            .write(|tx| state::request_stop(tx, &c.id).map(|_| ()))?;
        if c.status != RUNNING && c.status != RESTARTING {
            return Ok(c.id);
        }
        let config = self.container_config(&c)?;
        let signal = monitor::parse_signal(&config.stop_signal).unwrap_or(Signal::SIGTERM);
        let timeout = timeout
            .or(config.stop_timeout)
            .unwrap_or(DEFAULT_STOP_TIMEOUT);
        self.signal_container(&c, signal)?;
        if !self.wait_stopped(&c.id, Duration::from_secs(timeout.into()))? {
            tracing::debug!(timeout, "stop signal ignored; killing");
            let current = self.find_container(&c.id)?;
            self.signal_container(&current, Signal::SIGKILL)?;
            self.wait_stopped(&c.id, AFTER_KILL)?;
        }
        self.container_event(&c, "stop", &[]);
        Ok(c.id)
    }

    /// `kill -s SIGNAL`.
    pub fn kill(&mut self, key: &str, signal: &str) -> Result<String> {
        let sig = monitor::parse_signal(signal)
            .ok_or_else(|| EngineError::BadSignal(signal.to_string()))?;
        let c = self.find_container(key)?;
        if sig == Signal::SIGKILL {
            // Docker: kill is a deliberate stop; the restart policy must not undo it.
            self.state
                .write(|tx| state::request_stop(tx, &c.id).map(|_| ()))?;
        }
        if c.status != RUNNING || !self.signal_container(&c, sig)? {
            return Err(EngineError::NotRunning(c.name));
        }
        self.container_event(&c, "kill", &[("signal", (sig as i32).to_string())]);
        Ok(c.id)
    }

    /// Whether a monitor (or a foreground burrow) still holds the container's lock.
    pub(super) fn watched(&self, id: &str) -> bool {
        let lock = self.lock_path(id);
        // A missing lock (or run dir, removed with the container) means nobody watches.
        lock.exists() && matches!(FileLock::try_exclusive(&lock), Ok(None))
    }

    /// Waits until the container is neither running nor restarting (or is gone), or
    /// `limit` passed.
    fn wait_stopped(&mut self, id: &str, limit: Duration) -> Result<bool> {
        let until = Instant::now() + limit;
        let mut pacer = Pacer::new();
        loop {
            let Some(c) = self.state.find_containers(id)?.pop() else {
                return Ok(true);
            };
            if !self.watched(id) || (c.status != RUNNING && c.status != RESTARTING) {
                return Ok(true);
            }
            if Instant::now() >= until {
                return Ok(false);
            }
            pacer.pause();
        }
    }

    /// `wait`: blocks until the container stops and returns its exit code.
    pub fn wait(&mut self, key: &str) -> Result<i32> {
        let c = self.find_container(key)?;
        let mut pacer = Pacer::new();
        loop {
            let now = self.find_container(&c.id)?;
            if now.status != RUNNING && now.status != RESTARTING {
                return Ok(now.exit_code.unwrap_or(0));
            }
            pacer.pause();
        }
    }

    /// `restart`: stop (with the timeout), then start again under a new monitor.
    pub fn restart(&mut self, key: &str, timeout: Option<u32>) -> Result<String> {
        let id = self.stop(key, timeout)?;
        self.wait_stopped(&id, AFTER_KILL)?;
        let id = self.start_detached(&id)?;
        let c = self.find_container(&id)?;
        self.container_event(&c, "restart", &[]);
        Ok(id)
    }

    /// Kills a running container for `rm -f` and waits until its monitor let go of it.
    pub(super) fn kill_for_removal(&mut self, c: &ContainerRecord) -> Result<()> {
        self.state
            .write(|tx| state::request_stop(tx, &c.id).map(|_| ()))?;
        let until = Instant::now() + AFTER_KILL;
        let mut pacer = Pacer::new();
        while self.watched(&c.id) {
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

    pub fn rename(&mut self, key: &str, name: &str) -> Result<()> {
        if !super::names::valid(name) {
            return Err(EngineError::BadName(name.to_string()));
        }
        let c = self.find_container(key)?;
        self.state
            .write(|tx| state::rename_container(tx, &c.id, name))?;
        let renamed = self.find_container(&c.id)?;
        self.container_event(&renamed, "rename", &[("oldName", format!("/{}", c.name))]);
        Ok(())
    }

    /// `container prune`: removes every stopped container. Returns their ids.
    pub fn prune_containers(&mut self) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for s in self.list_containers(true)? {
            let status = s.record.status.as_str();
            if status != RUNNING && status != RESTARTING {
                removed.push(self.remove_container(&s.record.id, Default::default())?);
            }
        }
        Ok(removed)
    }

    /// `system restore` (e.g. from a crontab `@reboot` line): starts every container whose
    /// restart policy says it should be running and is not. Returns the started names.
    pub fn restore(&mut self) -> Result<Vec<(String, Result<String>)>> {
        let mut out = Vec::new();
        for s in self.list_containers(true)? {
            let r = &s.record;
            if r.status == RUNNING || r.status == RESTARTING {
                continue;
            }
            if s.config.restart_policy.restores(r.stop_requested) {
                let outcome = self.start_detached(&r.id);
                out.push((r.name.clone(), outcome));
            }
        }
        Ok(out)
    }
}

/// Tells the waiting command why a monitor failed before the container ran.
pub fn report_monitor_failure(ready: &mut Option<File>, err: &EngineError) {
    if let Some(mut r) = ready.take() {
        let _ = monitor::send_ready(
            &mut r,
            &Ready::Failed {
                code: err.exit_code(),
                message: err.to_string(),
            },
        );
        let _ = r.flush();
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

impl Engine {
    /// The host pid of a running container's pid 1, checked against its start time.
    fn running_pid(&mut self, key: &str) -> Result<(ContainerRecord, i32)> {
        let c = self.find_container(key)?;
        match c.pid {
            Some(pid) if c.status == RUNNING && proc::is_same_process(pid, c.pid_start) => {
                Ok((c, pid))
            }
            _ => Err(EngineError::NotRunning(c.name)),
        }
    }

    /// `exec`: runs a command inside a running container; returns its exit code.
    pub fn exec(&mut self, key: &str, opts: &ExecOptions) -> Result<i32> {
        let (c, pid) = self.running_pid(key)?;
        let _span = tracing::info_span!("exec", container = %&c.id[..12]).entered();
        let config = self.container_config(&c)?;
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
        Ok(crate::runtime::exec(pid, &spec, &self.idmap)?)
    }

    /// `top`: the processes of a running container as the host sees them.
    pub fn top(&mut self, key: &str) -> Result<Vec<crate::runtime::ProcessInfo>> {
        let (_, pid) = self.running_pid(key)?;
        Ok(crate::runtime::container_processes(pid)?)
    }
}
