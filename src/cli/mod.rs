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
mod roles;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::engine::{Engine, EngineError, GlobalOptions};

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
    /// The hidden roles (burrow as its own helper processes)
    #[command(flatten)]
    Role(roles::Role),
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
    crate::timing::mark("start");
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
    if let Command::Role(role) = cli.command {
        return roles::run(role, global, cli.log_level.as_deref());
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

pub(super) fn log_filter(level: Option<&str>) -> tracing_subscriber::EnvFilter {
    let filter = level
        .map(str::to_string)
        .or_else(|| std::env::var("BURROW_LOG").ok())
        .unwrap_or_else(|| "error".into());
    tracing_subscriber::EnvFilter::new(filter)
}

pub(super) fn init_tracing(level: Option<&str>) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter(level))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
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
        Command::Exec(a) => lifecycle::exec(&engine, a),
        Command::Top(a) => lifecycle::top(&engine, a),
        Command::Port(a) => lifecycle::port(&engine, a),
        Command::System(SystemCommand::Restore) => system_restore(&engine),
        Command::System(SystemCommand::Unit) => system_unit(&engine),
        Command::Version | Command::Role(_) => unreachable!("handled above"),
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
                eprintln!(
                    "burrow: cannot restore {name}: {}",
                    crate::errors::render_chain(&e)
                );
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
