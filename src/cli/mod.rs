//! The command line: clap definitions, dispatch, and the one place that prints errors.

mod attach;
mod container;
mod events;
mod format;
mod image;
mod lifecycle;
mod logs;
mod network;
mod plugin;
mod progress;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::engine::{Engine, EngineError, GlobalOptions, MonitorArgs, RELAY_READY, RelayArgs};

#[derive(Parser, Debug)]
#[command(
    name = "burrow",
    version,
    about = "Rootless, daemonless containers with Docker's commands",
    propagate_version = true
)]
struct Cli {
    /// Log filter for diagnostics on stderr (error, warn, info, debug, trace); also BURROW_LOG
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Data directory (default ~/.local/share/burrow, /var/lib/burrow for root)
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Runtime directory (default $XDG_RUNTIME_DIR/burrow, else /tmp/burrow-UID)
    #[arg(long, global = true, value_name = "DIR")]
    runroot: Option<PathBuf>,
    /// Storage driver: overlay, fuse-overlayfs or vfs (default: detected)
    #[arg(long, global = true, value_name = "NAME")]
    storage_driver: Option<String>,
    /// Config file (default ~/.config/burrow/burrow.toml, then /etc/burrow/burrow.toml)
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Pull an image from a registry
    Pull(image::PullArgs),
    /// List images
    Images(image::ImagesArgs),
    /// Create a tag TARGET that refers to SOURCE
    Tag(image::TagArgs),
    /// Remove one or more images
    Rmi(image::RmiArgs),
    /// Log in to a registry
    Login(image::LoginArgs),
    /// Log out from a registry
    Logout(image::LogoutArgs),
    /// Manage images
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Create and run a new container from an image
    Run(container::RunArgs),
    /// Create a new container
    Create(container::CreateArgs),
    /// Start one or more stopped containers (in the foreground)
    Start(container::StartArgs),
    /// List containers
    Ps(container::PsArgs),
    /// Remove one or more containers
    Rm(container::RmArgs),
    /// Show low-level information on containers or images
    Inspect(container::InspectArgs),
    /// Stop running containers (stop signal, then SIGKILL after the timeout)
    Stop(lifecycle::StopArgs),
    /// Send a signal to running containers
    Kill(lifecycle::KillArgs),
    /// Restart containers
    Restart(lifecycle::StopArgs),
    /// Wait for containers to stop and print their exit codes
    Wait(lifecycle::WaitArgs),
    /// Rename a container
    Rename(lifecycle::RenameArgs),
    /// Attach to a running container's stdio (detach with ctrl-p ctrl-q)
    Attach(attach::AttachArgs),
    /// Run a command in a running container
    Exec(lifecycle::ExecArgs),
    /// Show a container's logs
    Logs(logs::LogsArgs),
    /// Manage log driver plugins
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Show the processes of a running container
    Top(lifecycle::TopArgs),
    /// List a container's published ports
    Port(lifecycle::PortArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(container::ContainerCommand),
    /// Show events: container and image changes, healthcheck transitions
    Events(events::EventsArgs),
    /// Manage burrow itself
    #[command(subcommand)]
    System(SystemCommand),
    /// Show the burrow version
    Version,
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

#[derive(Subcommand, Debug)]
enum SystemCommand {
    /// Start the containers whose restart policy says they should run (for a crontab
    /// `@reboot burrow system restore` line or a systemd user unit)
    Restore,
    /// Print a systemd user unit that runs `burrow system restore` at login/boot
    Unit,
}

/// Parses the command line, runs the command, prints any error once, and returns the exit
/// code: 125 for burrow's own failures, 126/127 when the container's command cannot be
/// run or found, otherwise the container's status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                _ => 125,
            };
            let _ = e.print();
            return code;
        }
    };
    let global = GlobalOptions {
        root: cli.root.clone(),
        runroot: cli.runroot.clone(),
        storage_driver: cli.storage_driver.clone(),
        config: cli.config.clone(),
    };
    if let Command::NetworkHolder { upstream_fd, dir } = &cli.command {
        let (upstream_fd, dir) = (*upstream_fd, dir.clone());
        return crate::network::holder::main(crate::network::holder::HolderArgs {
            upstream_fd,
            dir,
        });
    }
    if let Command::Egress {
        holder,
        exit_fd,
        ready_fd,
        pasta,
        pid_file,
    } = &cli.command
    {
        return crate::network::egress::main(crate::network::egress::EgressArgs {
            holder: *holder,
            exit_fd: *exit_fd,
            ready_fd: *ready_fd,
            pasta: pasta.clone(),
            pid_file: pid_file.clone(),
        });
    }
    if let Command::Monitor { id, hold, tty_size } = &cli.command {
        let args = crate::engine::MonitorArgs {
            hold: *hold,
            tty_size: *tty_size,
        };
        return monitor_main(global, id, &args, cli.log_level.as_deref());
    }
    init_tracing(cli.log_level.as_deref());
    match dispatch(cli.command, global) {
        Ok(code) => code,
        Err(err) => {
            let code = err
                .chain()
                .find_map(|e| e.downcast_ref::<EngineError>())
                .map_or(125, EngineError::exit_code);
            eprintln!("burrow: {}", crate::errors::render_chain(err.as_ref()));
            code
        }
    }
}

fn log_filter(level: Option<&str>) -> tracing_subscriber::EnvFilter {
    let filter = level
        .map(str::to_string)
        .or_else(|| std::env::var("BURROW_LOG").ok())
        .unwrap_or_else(|| "error".into());
    tracing_subscriber::EnvFilter::new(filter)
}

fn init_tracing(level: Option<&str>) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter(level))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
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
    let log_path = engine.paths.container_dir(id).join("monitor.log");
    if let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
    {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(log_filter(level))
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .try_init();
    }
    match engine.containers().monitor(id, args, &mut ready) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(%e, "monitor failed");
            crate::engine::report_monitor_failure(&mut ready, &e);
            125
        }
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

fn dispatch(command: Command, global: GlobalOptions) -> anyhow::Result<i32> {
    if let Command::Version = command {
        println!("burrow version {}", env!("CARGO_PKG_VERSION"));
        return Ok(0);
    }
    let engine = Engine::open(global)?;
    let _span = tracing::info_span!("command").entered();
    let result = match command {
        Command::Pull(a) => image::pull(&engine, a),
        Command::Images(a) => image::images(&engine, a),
        Command::Tag(a) => image::tag(&engine, a),
        Command::Rmi(a) => image::rmi(&engine, a),
        Command::Login(a) => image::login(&engine, a),
        Command::Logout(a) => image::logout(&engine, a),
        Command::Image(c) => image::image_command(&engine, c),
        Command::Run(a) => container::run(&engine, a),
        Command::Create(a) => container::create(&engine, a),
        Command::Start(a) => container::start(&engine, a),
        Command::Ps(a) => container::ps(&engine, a),
        Command::Rm(a) => container::rm(&engine, a),
        Command::Inspect(a) => container::inspect(&engine, a),
        Command::Container(c) => container::container_command(&engine, c),
        Command::Stop(a) => lifecycle::stop(&engine, a),
        Command::Kill(a) => lifecycle::kill(&engine, a),
        Command::Restart(a) => lifecycle::restart(&engine, a),
        Command::Wait(a) => lifecycle::wait(&engine, a),
        Command::Rename(a) => lifecycle::rename(&engine, a),
        Command::Attach(a) => attach::attach(&engine, a),
        Command::Logs(a) => logs::logs(&engine, a),
        Command::Plugin(c) => plugin::plugin(&engine, c),
        Command::Network(c) => network::network(&engine, c),
        Command::Events(a) => events::events(&engine, a),
        Command::Relay {
            id,
            hold,
            stderr_fd,
        } => engine
            .containers()
            .relay(&id, &RelayArgs { hold, stderr_fd }, &mut relay_ready)
            .map(|()| 0)
            .map_err(Into::into),
        Command::Exec(a) => lifecycle::exec(&engine, a),
        Command::Top(a) => lifecycle::top(&engine, a),
        Command::Port(a) => lifecycle::port(&engine, a),
        Command::System(SystemCommand::Restore) => system_restore(&engine),
        Command::System(SystemCommand::Unit) => system_unit(&engine),
        Command::Health { id } => engine
            .containers()
            .probe_health(&id)
            .map(|()| 0)
            .map_err(Into::into),
        Command::Version
        | Command::Monitor { .. }
        | Command::NetworkHolder { .. }
        | Command::Egress { .. } => {
            unreachable!("handled above")
        }
    };
    print_warnings(&engine);
    result
}

fn system_restore(engine: &Engine) -> anyhow::Result<i32> {
    let mut code = 0;
    for (name, outcome) in engine.containers().restore()? {
        match outcome {
            Ok(_) => out(&format!("{name}\n")),
            Err(e) => {
                eprintln!("burrow: cannot restore {name}: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// A user unit for `systemctl --user`: with lingering enabled (`loginctl enable-linger`)
/// it runs at boot, which is what brings `--restart always` containers back without a
/// daemon.
fn system_unit(engine: &Engine) -> anyhow::Result<i32> {
    let exe = std::env::current_exe()?;
    out(&format!(
        "# ~/.config/systemd/user/burrow-restore.service\n\
         # enable: systemctl --user enable burrow-restore.service && loginctl enable-linger\n\
         [Unit]\n\
         Description=Start burrow containers whose restart policy says they should run\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart={} --root {} system restore\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        exe.display(),
        engine.paths.data.display()
    ));
    Ok(0)
}

pub(super) fn print_warnings(engine: &Engine) {
    let mut err = std::io::stderr().lock();
    for w in engine.take_warnings() {
        let _ = writeln!(err, "burrow: warning: {w}");
    }
}

/// Prints to stdout, ignoring a closed pipe (`burrow images | head -1`).
fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
