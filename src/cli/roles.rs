//! The hidden roles: burrow re-executed as one of its own helper processes (see
//! docs/ARCHITECTURE.md). Each has its own entry here, set up its own way: the monitor logs
//! to a file beside the container's state and keeps its stdout for one message to whoever
//! started it; the relay and the prober open the engine like a command.

use std::path::PathBuf;

use clap::Subcommand;

use crate::engine::{Engine, EngineError, GlobalOptions, MonitorArgs, RELAY_READY, RelayArgs};

#[derive(Subcommand, Debug)]
pub enum Role {
    /// The per-container monitor (internal)
    #[command(name = "__monitor", hide = true)]
    Monitor {
        id: String,
        /// Hold the output until a client attaches (a foreground run)
        #[arg(long)]
        hold: bool,
        /// The size the container's terminal starts with, ROWSxCOLS
        #[arg(long, value_parser = parse_tty_size)]
        tty_size: Option<(u16, u16)>,
    },
    /// The healthcheck prober a monitor runs beside its container (internal)
    #[command(name = "__health", hide = true)]
    Health { id: String },
    /// The per-user network holder: keeps the namespaces where bridges live (internal)
    #[command(name = "__network-holder", hide = true)]
    NetworkHolder {
        /// An inherited UDP socket in the host's network namespace, for DNS forwarding
        #[arg(long)]
        upstream_fd: Option<i32>,
        /// RUN/network, where the networks' DNS records are
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The network holder's way out: libslirp in this process, or a watched pasta (internal)
    #[command(name = "__egress", hide = true)]
    Egress {
        /// The holder's pid (its namespaces get the tap)
        #[arg(long)]
        holder: i32,
        /// An inherited pipe whose end-of-file means the holder is gone
        #[arg(long)]
        exit_fd: i32,
        /// An inherited pipe to write `1` to once the tap carries traffic
        #[arg(long)]
        ready_fd: i32,
        /// Start this pasta program and end it with the holder, instead of running libslirp
        #[arg(long, requires = "pid_file")]
        pasta: Option<PathBuf>,
        /// Where pasta writes its pid
        #[arg(long)]
        pid_file: Option<PathBuf>,
    },
    /// The relay between a detached container's stdio and its log and attach socket (internal)
    #[command(name = "__relay", hide = true)]
    Relay {
        id: String,
        #[arg(long)]
        hold: bool,
        /// The inherited descriptor of the container's stderr pipe
        #[arg(long)]
        stderr_fd: i32,
    },
}

/// Runs `role`; returns the process's exit code.
pub fn run(role: Role, global: GlobalOptions, level: Option<&str>) -> i32 {
    match role {
        Role::NetworkHolder { upstream_fd, dir } => {
            crate::network::holder::main(crate::network::holder::HolderArgs { upstream_fd, dir })
        }
        Role::Egress {
            holder,
            exit_fd,
            ready_fd,
            pasta,
            pid_file,
        } => crate::network::egress::main(crate::network::egress::EgressArgs {
            holder,
            exit_fd,
            ready_fd,
            pasta,
            pid_file,
        }),
        Role::Monitor { id, hold, tty_size } => {
            monitor_main(global, &id, &MonitorArgs { hold, tty_size }, level)
        }
        Role::Relay {
            id,
            hold,
            stderr_fd,
        } => relay_main(global, &id, &RelayArgs { hold, stderr_fd }, level),
        Role::Health { id } => with_engine(global, level, |engine| {
            engine.containers().probe_health(&id)
        }),
    }
}

/// A role that works like a command: diagnostics on stderr, an error rendered once.
fn with_engine(
    global: GlobalOptions,
    level: Option<&str>,
    f: impl FnOnce(&Engine) -> Result<(), EngineError>,
) -> i32 {
    super::init_tracing(level);
    match Engine::open(global).and_then(|engine| f(&engine)) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("burrow: {}", crate::errors::render_chain(&err));
            err.exit_code()
        }
    }
}

/// `burrow __monitor ID`, spawned by `run -d` / `start` with stdout a pipe to the starting
/// command and stderr the container's log. It leaves the caller's session, keeps the pipe
/// aside for the one "started" message, gives the container its log as stdout, and logs
/// its own diagnostics to `monitor.log` beside the container's state.
fn monitor_main(global: GlobalOptions, id: &str, args: &MonitorArgs, level: Option<&str>) -> i32 {
    let _ = nix::unistd::setsid();
    let mut ready = match keep_ready_pipe() {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("burrow monitor: cannot set up its stdio: {e}");
            return 125;
        }
    };
    let engine = match Engine::open(global) {
        Ok(engine) => engine,
        Err(e) => {
            crate::engine::report_monitor_failure(&mut ready, &e);
            return 125;
        }
    };
    log_to(&engine.paths.container_dir(id).join("monitor.log"), level);
    match engine.containers().monitor(id, args, &mut ready) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(%e, "monitor failed");
            crate::engine::report_monitor_failure(&mut ready, &e);
            125
        }
    }
}

/// `burrow __relay ID`, spawned by the monitor with the container's stdio pipes. Its stderr
/// carries one line to the monitor — ready, or why not — so its diagnostics go to
/// `relay.log` beside the container's state.
fn relay_main(global: GlobalOptions, id: &str, args: &RelayArgs, level: Option<&str>) -> i32 {
    let result = Engine::open(global).and_then(|engine| {
        log_to(&engine.paths.container_dir(id).join("relay.log"), level);
        engine.containers().relay(id, args, &mut relay_ready)
    });
    match result {
        Ok(()) => 0,
        Err(err) => {
            tracing::error!(%err, "relay failed");
            // Before it is ready, this line is what the monitor reports.
            eprintln!("burrow: {}", crate::errors::render_chain(&err));
            err.exit_code()
        }
    }
}

/// Sends this process's diagnostics (`--log-level`, `BURROW_LOG`) to the file at `path`.
fn log_to(path: &std::path::Path, level: Option<&str>) {
    if let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(super::log_filter(level))
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .try_init();
    }
}

/// Moves the ready pipe off stdout (to a close-on-exec descriptor the container cannot
/// inherit) and points stdout at stderr, the container's log.
fn keep_ready_pipe() -> nix::Result<std::fs::File> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let ready = nix::unistd::dup(std::io::stdout())?;
    fcntl(&ready, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    nix::unistd::dup2_stdout(std::io::stderr())?;
    Ok(std::fs::File::from(ready))
}

/// The relay tells its monitor it is ready on stderr, then lets go of it (errors before
/// this reach the monitor as the usual one-line message).
fn relay_ready() {
    eprintln!("{RELAY_READY}");
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

/// `--tty-size 24x80`.
fn parse_tty_size(s: &str) -> Result<(u16, u16), String> {
    let (rows, cols) = s.split_once('x').ok_or("expected ROWSxCOLS")?;
    let n = |v: &str| v.parse::<u16>().map_err(|e| format!("{v:?}: {e}"));
    Ok((n(rows)?, n(cols)?))
}
