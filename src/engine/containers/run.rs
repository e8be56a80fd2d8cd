//! Starting a container under its monitor, and the monitor's side of the engine: what the
//! supervisor loop (`crate::monitor::supervisor`) asks of it for the container it watches.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::lifecycle::{POLL, Pacer};
use super::{Containers, EXITED, RESTARTING, RUNNING};
use crate::engine::lock::{FileLock, write_replace_unsynced};
use crate::engine::logconfig::LogRefusal;
use crate::engine::networks::NetworkRefusal;
use crate::engine::spec::ContainerConfig;
use crate::engine::{EngineError, Result, now_unix};
use crate::monitor::supervisor::{self, Run, Supervised};
use crate::monitor::{self, Ready, stdio};
use crate::network::holder::Holder;
use crate::network::ports;
use crate::runtime::{ContainerSpec, NetworkMode};
use crate::state::{self, ContainerRecord};

/// How the monitor runs (`burrow __monitor ID [--hold] [--tty-size ROWSxCOLS]`).
#[derive(Debug, Default, Clone)]
pub struct MonitorArgs {
    /// A client attaches right after the start: the relay holds the output for it.
    pub hold: bool,
    /// The size the container's terminal starts with.
    pub tty_size: Option<(u16, u16)>,
}

impl Containers<'_> {
    /// Starts a container under a new monitor process and returns once its command runs
    /// (or failed to). A running container is left alone, as Docker does.
    pub fn start(&self, key: &str) -> Result<String> {
        self.start_monitored(key, &MonitorArgs::default())
    }

    /// Starts a container under a new monitor process, as [`Containers::start`], with
    /// `args` for the monitor: a foreground run holds the output for its client.
    pub fn start_monitored(&self, key: &str, args: &MonitorArgs) -> Result<String> {
        let c = self.records.find(key)?;
        if c.status == RUNNING || c.status == RESTARTING {
            return Ok(c.id);
        }
        let _span = tracing::info_span!("start", container = %&c.id[..12]).entered();
        self.ids.used(self.warnings);
        self.state
            .write(|tx| state::clear_stop_request(tx, &c.id))?;

        let log_path = self.records.container_log(&c.id);
        let io = |path: &PathBuf| {
            let path = path.clone();
            move |source| EngineError::Io {
                what: "start the monitor, logging to",
                path,
                source,
            }
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
        crate::timing::mark("monitor:spawn");
        let child = cmd.spawn().map_err(io(&log_path))?;
        // Our copy of the write end went into `cmd`; drop it so EOF means the monitor is gone.
        drop(cmd);
        tracing::debug!(monitor = child.id(), "monitor spawned");
        let ready = monitor::recv_ready(ready_r);
        crate::timing::mark("monitor:ready");
        match ready {
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

    /// The monitor's body (`burrow __monitor ID`): runs the container under its restart
    /// policy (see [`supervisor::supervise`]), recording every start and exit, and honours
    /// --rm. `ready` gets one message for the command that started us. Returns the
    /// monitor's exit code.
    pub fn monitor(&self, id: &str, args: &MonitorArgs, ready: &mut Option<File>) -> Result<i32> {
        let mut c = self.records.find(id)?;
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
        let config = self.records.config(&c)?;
        let (_relay, relay_line) = self.start_relay(&c.id, config.interactive, args.hold)?;
        c.monitor_pid = Some(std::process::id() as i32);
        let policy = config.restart_policy;
        let mut watched = Watched {
            containers: self,
            c,
            config,
            tty_size: args.tty_size,
            relay_line,
        };
        supervisor::supervise(&mut watched, policy, ready)
    }

    /// The container's lock, waiting a little for a previous monitor that is still
    /// writing its last record; None when another monitor really watches the container.
    fn take_watch(&self, id: &str) -> Result<Option<FileLock>> {
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            if let Some(lock) = self.records.try_watch(id)? {
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
    ) -> Result<(std::process::Child, stdio::Line)> {
        let io = |source| EngineError::Io {
            what: "start the stdio relay of",
            path: self.records.attach_socket_path(id),
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
        crate::timing::mark("relay:spawn");
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
        crate::timing::mark("relay:ready");
        if status.trim_end() != stdio::READY {
            let message = status.trim_end().trim_start_matches("burrow: ");
            return Err(if message.is_empty() {
                LogRefusal::RelayDied
            } else {
                LogRefusal::Relay(message.to_string())
            }
            .into());
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
        Ok((child, stdio::Line(line)))
    }

    /// Sleeps `delay` unless a stop is requested first; true when it was.
    fn wait_unless_stopped(&self, id: &str, delay: Duration) -> Result<bool> {
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

    /// Runs the container once and records it: running, then its pid once its command
    /// runs (`started` is called then too), then its exit status. Returns the runtime's
    /// outcome. The caller holds the container's lock.
    fn run_recorded(
        &self,
        c: &mut ContainerRecord,
        config: &ContainerConfig,
        tty_size: Option<(u16, u16)>,
        started: &mut dyn FnMut(&ContainerRecord),
    ) -> Result<std::result::Result<i32, crate::runtime::RuntimeError>> {
        let mut spec = self.runtime_spec(c, config, tty_size)?;
        // `network connect`/`disconnect` wait until the container runs with these endpoints.
        let mut network_lock = Some(self.networks.network_lock(&c.id)?);
        let endpoints = self.networks.endpoints(c, config)?;
        let holder = if endpoints.is_empty() {
            None
        } else {
            let h = self.networks.holder()?;
            spec.userns = Some(h.userns());
            spec.network = NetworkMode::Attached;
            Some(h)
        };
        // Published ports: bound here (host side, as the user), forwarded by the holder
        // while `_ports` stays open.
        let ports_file = self.paths.container_run_dir(&c.id).join("ports.json");
        let _ports = match (&holder, endpoints.first()) {
            // On the holder's side of the first network (bridge, or a network plugin's).
            (Some(_), Some(e)) if !config.ports.is_empty() && e.in_holder() => {
                let target = e
                    .attach
                    .ips
                    .first()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
                let bound = ports::bind(&config.ports).map_err(NetworkRefusal::Publish)?;
                let control = Holder::control(&self.paths.runtime.join("network"));
                let stream =
                    ports::hand_over(&control, &bound, target).map_err(NetworkRefusal::Publish)?;
                let published: Vec<ports::Published> = bound.into_iter().map(|(p, _)| p).collect();
                write_replace_unsynced(
                    &ports_file,
                    &serde_json::to_vec(&published).expect("ports serialise"),
                )?;
                Some(stream)
            }
            _ => None,
        };
        if let Some(key) = config.network.strip_prefix("container:") {
            let other = self.records.find(key)?;
            let name = other.name.clone();
            let pid = self
                .records
                .pid_if_running(other)?
                .ok_or(NetworkRefusal::JoinStopped { container: name })?;
            let pid = crate::runtime::namespace_anchor(pid)?;
            spec.userns = Some(format!("/proc/{pid}/ns/user").into());
            spec.network = NetworkMode::Joined(format!("/proc/{pid}/ns/net").into());
        }
        let plugin_cache = self.plugins.cache_dir();
        let mut on_netns = |pid: i32| match &holder {
            Some(h) => crate::network::connect(h, pid, plugin_cache.clone(), &endpoints),
            None => Ok(()),
        };
        c.status = RUNNING.into();
        c.started = Some(now_unix());
        c.exit_code = None;
        c.finished = None;
        self.state.write(|tx| state::update_container(tx, c))?;
        // Health starts over with every start, "starting" before the first probe.
        let health = config.healthcheck.as_ref().map(|_| {
            serde_json::to_string(&crate::monitor::health::Health::default())
                .expect("health serialises")
        });
        let state = &self.state;
        let outcome =
            crate::runtime::run_observed(&spec, self.ids.map(), &mut on_netns, &mut |pid| {
                c.pid = Some(pid);
                c.pid_start = crate::runtime::proc::process_start_time(pid);
                let attrs = std::collections::BTreeMap::from([
                    ("name".to_string(), c.name.clone()),
                    ("image".to_string(), c.image_name.clone()),
                ]);
                let recorded = state.write(|tx| {
                    state::update_container(tx, c)?;
                    if health.is_some() {
                        state::set_health(tx, &c.id, health.as_deref())?;
                    }
                    state::add_event(tx, "container", "start", &c.id, &attrs)
                });
                if let Err(e) = recorded {
                    tracing::error!(%e, "cannot record the container's pid");
                }
                network_lock.take();
                crate::timing::mark("container:started");
                started(c);
            });
        crate::timing::mark("container:exited");
        drop(_ports);
        let _ = std::fs::remove_file(&ports_file);
        c.pid = None;
        c.pid_start = None;
        c.status = EXITED.into();
        c.finished = Some(now_unix());
        c.exit_code = Some(match &outcome {
            Ok(code) => *code,
            Err(e) => e.exit_code(),
        });
        c.error = outcome
            .as_ref()
            .err()
            .map(|e| crate::errors::render_chain(e));
        self.state.write(|tx| state::update_container(tx, c))?;
        if outcome.is_ok() {
            let code = c.exit_code.unwrap_or(0).to_string();
            self.records.event(c, "die", &[("exitCode", code)]);
        }
        Ok(outcome)
    }

    fn runtime_spec(
        &self,
        c: &ContainerRecord,
        config: &ContainerConfig,
        tty_size: Option<(u16, u16)>,
    ) -> Result<ContainerSpec> {
        let dir = self.paths.container_dir(&c.id);
        let rootfs_path = dir.join("rootfs.json");
        let rootfs_json = std::fs::read(&rootfs_path).map_err(|source| EngineError::Io {
            what: "read",
            path: rootfs_path.clone(),
            source,
        })?;
        let rootfs = serde_json::from_slice(&rootfs_json).map_err(|source| {
            EngineError::State(crate::state::StateError::Corrupt {
                what: "rootfs",
                id: c.id.clone(),
                source,
            })
        })?;
        let mount_point = self.paths.container_run_dir(&c.id).join("merged");
        std::fs::create_dir_all(&mount_point).map_err(|source| EngineError::Io {
            what: "create",
            path: mount_point.clone(),
            source,
        })?;
        let userdata = dir.join("userdata");
        let etc_files = ["hosts", "hostname", "resolv.conf"]
            .iter()
            .map(|f| (format!("/etc/{f}"), userdata.join(f)))
            .collect();
        Ok(ContainerSpec {
            id: c.id.clone(),
            rootfs,
            mount_point,
            readonly_rootfs: config.read_only,
            args: config.args(),
            env: config.env.clone(),
            cwd: config.working_dir.clone(),
            user: Some(config.user.clone()).filter(|u| !u.is_empty()),
            hostname: config.hostname.clone(),
            network: if config.network == "host" {
                NetworkMode::Host
            } else {
                NetworkMode::None
            },
            userns: None,
            etc_files,
            tty: config.tty,
            stdin: config.interactive,
            init: config.init,
            tty_size,
            tty_size_file: config.tty.then(|| self.records.attach_path(&c.id, "size")),
        })
    }
}

/// The container a monitor watches, as its supervisor sees it.
struct Watched<'c, 'e> {
    containers: &'c Containers<'e>,
    c: ContainerRecord,
    config: ContainerConfig,
    tty_size: Option<(u16, u16)>,
    relay_line: stdio::Line,
}

impl Watched<'_, '_> {
    fn write(&self) -> Result<()> {
        Ok(self
            .containers
            .state
            .write(|tx| state::update_container(tx, &self.c))?)
    }
}

impl Supervised for Watched<'_, '_> {
    type Error = EngineError;

    fn run_once(&mut self, started: &mut dyn FnMut(i32)) -> Result<Run> {
        let mut prober = None;
        let mut prober_cmd = self
            .config
            .healthcheck
            .as_ref()
            .map(|_| self.containers.self_command());
        let outcome = self.containers.run_recorded(
            &mut self.c,
            &self.config,
            self.tty_size,
            &mut |record| {
                started(record.pid.unwrap_or(0));
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
            },
        )?;
        if let Some(mut p) = prober {
            let _ = p.kill();
            let _ = p.wait();
        }
        Ok(Run {
            code: self.c.exit_code.unwrap_or(125),
            start_error: outcome.err().map(|e| crate::errors::render_chain(&e)),
        })
    }

    fn stop_requested(&mut self) -> Result<bool> {
        // Another command may have asked for a stop meanwhile.
        let latest = self.containers.records.current(&self.c.id)?;
        self.c.stop_requested = latest.is_some_and(|l| l.stop_requested);
        Ok(self.c.stop_requested)
    }

    fn restarts(&self) -> u32 {
        u32::try_from(self.c.restart_count).unwrap_or(u32::MAX)
    }

    fn restarting(&mut self, code: i32) -> Result<()> {
        self.c.status = RESTARTING.into();
        self.write()?;
        self.relay_line.exited(code);
        Ok(())
    }

    fn wait_unless_stopped(&mut self, delay: Duration) -> Result<bool> {
        let stopped = self.containers.wait_unless_stopped(&self.c.id, delay)?;
        if stopped {
            self.c.status = EXITED.into();
            self.write()?;
        }
        Ok(stopped)
    }

    fn restarted(&mut self) {
        self.c.restart_count += 1;
    }

    fn finish(&mut self, code: i32) -> Result<()> {
        crate::timing::mark("finish:begin");
        self.c.monitor_pid = None;
        self.write()?;
        // Removed before the lock is let go, so nobody sees a stopped --rm container; its
        // files are deleted once the client has heard the exit.
        let mut aside = None;
        if self.config.auto_remove {
            aside = self.containers.set_aside(&self.c.id)?;
            self.containers.records.event(&self.c, "destroy", &[]);
            crate::timing::mark("removed");
        }
        // Then the client hears the exit, and finds the container's final state.
        self.relay_line.exited(code);
        self.containers.purge(aside)
    }
}

/// Tells the waiting command why a monitor failed before the container ran.
pub fn report_monitor_failure(ready: &mut Option<File>, err: &EngineError) {
    if let Some(mut r) = ready.take() {
        let _ = monitor::send_ready(
            &mut r,
            &Ready::Failed {
                code: err.exit_code(),
                message: crate::errors::render_chain(err),
            },
        );
        let _ = r.flush();
    }
}
