//! Container commands: run, create, start, ps, rm, inspect.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use super::attach;
use super::format::{human_duration, human_size, now_unix, short_id};
use super::image::{print_inspect, print_records};
use super::lifecycle::{
    ContainerPruneArgs, ExecArgs, KillArgs, RenameArgs, StopArgs, TopArgs, WaitArgs, each, exec,
    kill, prune, rename, restart, stop, top, wait,
};
use super::progress::Reporter;
use super::{out, print_warnings};
use crate::engine::logconfig::LogConfig;
use crate::engine::spec::{CreateOptions, DnsConfig};
use crate::engine::{ContainerSummary, Engine, EngineError, MonitorArgs, RemoveOptions};

/// Flags shared by `run` and `create`. `-h` is --hostname, as in Docker.
#[derive(Args, Debug)]
pub struct CreateFlags {
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to copy it from here)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// User: name|uid[:group|gid]
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Override the image's ENTRYPOINT ("" clears it)
    #[arg(long, allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Mount the container's root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    /// Network: bridge (the default), none, host, or a network's name or id
    #[arg(long = "network", alias = "net", value_name = "MODE")]
    pub network: Option<String>,
    /// Add a line to /etc/hosts (HOST:IP)
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// The container's IPv4 address on its (user-defined) network
    #[arg(long = "ip", value_name = "IPv4")]
    pub ip: Option<String>,
    /// The container's MAC address on its network
    #[arg(long = "mac-address", value_name = "MAC")]
    pub mac_address: Option<String>,
    /// Publish a container's port on the host: [ip:][hostPort:]containerPort[/tcp|/udp]
    #[arg(short = 'p', long = "publish", value_name = "PORT")]
    pub publish: Vec<String>,
    /// Publish the image's exposed ports on free host ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Name another container on the same network in /etc/hosts: CONTAINER[:ALIAS]
    #[arg(long = "link", value_name = "CONTAINER[:ALIAS]")]
    pub link: Vec<String>,
    /// Add a name the network's DNS answers for this container (user-defined networks)
    #[arg(long = "network-alias", alias = "net-alias", value_name = "NAME")]
    pub network_alias: Vec<String>,
    /// Set a DNS server in /etc/resolv.conf
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<String>,
    /// Set a DNS search domain ("." for none)
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// Set a DNS resolver option
    #[arg(long = "dns-option", alias = "dns-opt", value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Keep stdin open
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Pull over plain http / without certificate checks when false
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// Platform for a multi-arch image, e.g. linux/arm64
    #[arg(long)]
    pub platform: Option<String>,
    /// Restart policy: no, on-failure[:max-retries], always, unless-stopped
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Signal that stops the container (default: the image's STOPSIGNAL, else SIGTERM)
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds to wait for the stop signal before SIGKILL (default 10)
    #[arg(long, value_name = "SECONDS")]
    pub stop_timeout: Option<u32>,
    /// Run an init as pid 1 that forwards signals and reaps zombies
    #[arg(long)]
    pub init: bool,
    /// Command to run to check health (run with /bin/sh -c)
    #[arg(long, value_name = "CMD")]
    pub health_cmd: Option<String>,
    /// Time between checks (e.g. 30s, 500ms)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub health_interval: Option<std::time::Duration>,
    /// Longest time one check may run
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub health_timeout: Option<std::time::Duration>,
    /// Time to start before failed checks count
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub health_start_period: Option<std::time::Duration>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long, value_name = "N")]
    pub health_retries: Option<u32>,
    /// Disable any HEALTHCHECK the image has
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Set metadata on the container (KEY[=VALUE])
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Logging driver for the container (json-file, syslog, fluentd, awslogs, none, or an
    /// installed plugin)
    #[arg(long, value_name = "DRIVER")]
    pub log_driver: Option<String>,
    /// Log driver option
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opt: Vec<String>,
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// The image to run
    pub image: String,
    /// Command and arguments (replace the image's CMD)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Go-style durations as Docker takes them: "30s", "1m30s", "500ms".
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

impl CreateFlags {
    fn options(&self) -> Result<CreateOptions> {
        Ok(CreateOptions {
            image: self.image.clone(),
            command: self.command.clone(),
            name: self.name.clone(),
            env: self.env.clone(),
            env_files: self.env_file.clone(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            entrypoint: self.entrypoint.clone(),
            hostname: self.hostname.clone(),
            read_only: self.read_only,
            network: self.network.clone(),
            auto_remove: self.rm,
            tty: self.tty,
            interactive: self.interactive,
            tls_verify: self.tls_verify,
            platform: self.platform.clone(),
            restart: self.restart.clone(),
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            init: self.init,
            health: crate::monitor::health::HealthFlags {
                cmd: self.health_cmd.clone(),
                interval: self.health_interval,
                timeout: self.health_timeout,
                start_period: self.health_start_period,
                retries: self.health_retries,
                disabled: self.no_healthcheck,
            },
            labels: self.label.clone(),
            log: LogConfig::from_flags(self.log_driver.as_deref(), &self.log_opt)?,
            ip: self.ip.clone(),
            mac_address: self.mac_address.clone(),
            publish: self.publish.clone(),
            publish_all: self.publish_all,
            dns: DnsConfig {
                extra_hosts: self.add_host.clone(),
                aliases: self.network_alias.clone(),
                links: self.link.clone(),
                servers: self.dns.clone(),
                search: self.dns_search.clone(),
                options: self.dns_option.clone(),
            },
        })
    }
}

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run in the background under its monitor and print the container id
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Key sequence that detaches from the container, e.g. "ctrl-p,ctrl-q" (the default)
    #[arg(long, value_name = "KEYS", default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
    /// Forward the signals burrow receives to the container (without a terminal)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub sig_proxy: bool,
    #[command(flatten)]
    pub flags: CreateFlags,
}

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    #[command(flatten)]
    pub flags: CreateFlags,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Run in the foreground, attached to stdout/stderr, and return its exit status
    #[arg(short, long)]
    pub attach: bool,
    /// Attach stdin (implies --attach)
    #[arg(short, long)]
    pub interactive: bool,
    /// Key sequence that detaches from the container, e.g. "ctrl-p,ctrl-q" (the default)
    #[arg(long, value_name = "KEYS", default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
}

#[derive(Args, Debug, Default)]
pub struct PsArgs {
    /// Show all containers, not only running ones
    #[arg(short, long)]
    pub all: bool,
    /// Only ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Show the size of each container's writable layer
    #[arg(short, long)]
    pub size: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Show the last N created containers (all states)
    #[arg(short = 'n', long, value_name = "N")]
    pub last: Option<usize>,
    /// Show the latest created container (all states)
    #[arg(short, long)]
    pub latest: bool,
    /// Filter: status=, name=, id=, ancestor=, exited=
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Go template, or "table TEMPLATE", or "json"
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Force removal
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes (none exist yet)
    #[arg(short, long)]
    pub volumes: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Go template
    #[arg(short, long)]
    pub format: Option<String>,
    /// container or image
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Create and run a container
    Run(RunArgs),
    /// Create a container
    Create(CreateArgs),
    /// Start containers
    Start(StartArgs),
    /// List containers
    #[command(alias = "list", alias = "ps")]
    Ls(PsArgs),
    /// Remove containers
    Rm(RmArgs),
    /// Show container details
    Inspect(InspectArgs),
    /// Stop containers
    Stop(StopArgs),
    /// Send a signal to containers
    Kill(KillArgs),
    /// Restart containers
    Restart(StopArgs),
    /// Wait for containers to stop and print their exit codes
    Wait(WaitArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Remove all stopped containers
    Prune(ContainerPruneArgs),
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Show the processes of a running container
    Top(TopArgs),
}

pub fn container_command(engine: &Engine, c: ContainerCommand) -> Result<i32> {
    match c {
        ContainerCommand::Run(a) => run(engine, a),
        ContainerCommand::Create(a) => create(engine, a),
        ContainerCommand::Start(a) => start(engine, a),
        ContainerCommand::Ls(a) => ps(engine, a),
        ContainerCommand::Rm(a) => rm(engine, a),
        ContainerCommand::Inspect(mut a) => {
            a.kind = Some("container".into());
            inspect(engine, a)
        }
        ContainerCommand::Stop(a) => stop(engine, a),
        ContainerCommand::Kill(a) => kill(engine, a),
        ContainerCommand::Restart(a) => restart(engine, a),
        ContainerCommand::Wait(a) => wait(engine, a),
        ContainerCommand::Rename(a) => rename(engine, a),
        ContainerCommand::Prune(_) => prune(engine),
        ContainerCommand::Exec(a) => exec(engine, a),
        ContainerCommand::Top(a) => top(engine, a),
    }
}

fn create_container(engine: &Engine, flags: &CreateFlags) -> Result<String> {
    let reporter = Reporter::new(false);
    let opts = flags.options()?;
    if matches!(
        engine.images().resolve(&opts.image),
        Err(EngineError::NoSuchImage(_))
    ) {
        reporter.line(&format!("Unable to find image '{}' locally", opts.image));
    }
    Ok(engine.containers().create(&opts, &reporter)?)
}

pub fn run(engine: &Engine, a: RunArgs) -> Result<i32> {
    let id = create_container(engine, &a.flags)?;
    print_warnings(engine);
    if a.detach {
        engine.containers().start(&id)?;
        out(&format!("{id}\n"));
        return Ok(0);
    }
    let session = attach::Session {
        stdin: a.flags.interactive,
        stdin_once: a.flags.interactive,
        detach_keys: attach::parse_keys(&a.detach_keys)?,
        sig_proxy: a.sig_proxy,
    };
    foreground(engine, &id, &session)
}

/// Starts the container under its monitor with the output held for us, and attaches.
fn foreground(engine: &Engine, key: &str, session: &attach::Session) -> Result<i32> {
    let (id, tty) = engine.containers().tty(key)?;
    let args = MonitorArgs {
        hold: true,
        tty_size: if tty {
            crate::runtime::terminal_size()
        } else {
            None
        },
    };
    engine.containers().start_monitored(&id, &args)?;
    print_warnings(engine);
    let sock = engine.containers().connect_relay(&id)?;
    attach::join(engine, &id, tty, sock, session)
}

pub fn create(engine: &Engine, a: CreateArgs) -> Result<i32> {
    let id = create_container(engine, &a.flags)?;
    out(&format!("{id}\n"));
    Ok(0)
}

pub fn start(engine: &Engine, a: StartArgs) -> Result<i32> {
    if a.attach || a.interactive {
        if a.containers.len() > 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        print_warnings(engine);
        let session = attach::Session {
            stdin: a.interactive,
            stdin_once: a.interactive,
            detach_keys: attach::parse_keys(&a.detach_keys)?,
            sig_proxy: true,
        };
        return foreground(engine, &a.containers[0], &session);
    }
    each(&a.containers, |key| {
        engine.containers().start(key)?;
        Ok(())
    })
}

pub fn rm(engine: &Engine, a: RmArgs) -> Result<i32> {
    let force = a.force;
    each(&a.containers, |key| {
        match engine.containers().remove(key, RemoveOptions { force }) {
            // Docker: rm -f of a missing container is not an error.
            Err(EngineError::NoSuchContainer(_)) if force => Ok(()),
            other => other.map(|_| ()),
        }
    })
}

pub fn inspect(engine: &Engine, a: InspectArgs) -> Result<i32> {
    let mut docs = Vec::new();
    let mut code = 0;
    for key in &a.names {
        let found = match a.kind.as_deref() {
            Some("container") => inspect_container(engine, key),
            Some("image") => engine
                .images()
                .resolve(key)
                .and_then(|i| engine.images().inspect(&i)),
            Some(other) => bail!("unknown --type {other:?}: use container or image"),
            None => match inspect_container(engine, key) {
                Err(EngineError::NoSuchContainer(_)) => engine
                    .images()
                    .resolve(key)
                    .and_then(|i| engine.images().inspect(&i))
                    .map_err(|e| match e {
                        EngineError::NoSuchImage(k) => EngineError::NoSuchObject(k),
                        other => other,
                    }),
                other => other,
            },
        };
        match found {
            Ok(doc) => docs.push(doc),
            Err(e) => {
                eprintln!("burrow: {e}");
                code = 1;
            }
        }
    }
    print_inspect(&docs, a.format.as_deref())?;
    Ok(code)
}

fn inspect_container(engine: &Engine, key: &str) -> Result<serde_json::Value, EngineError> {
    let c = engine.containers().find(key)?;
    engine.containers().inspect(&c)
}

/// The health part of Docker's STATUS column: "healthy", "health: starting"...
fn health_status(s: &ContainerSummary) -> Option<String> {
    let health: crate::monitor::health::Health =
        serde_json::from_str(s.record.health.as_deref()?).ok()?;
    Some(health.status)
}

/// Docker's STATUS column.
fn status_text(s: &ContainerSummary) -> String {
    let r = &s.record;
    let now = now_unix();
    match r.status.as_str() {
        "running" => {
            let up = format!("Up {}", human_duration(now - r.started.unwrap_or(now)));
            match health_status(s).as_deref() {
                Some("starting") => format!("{up} (health: starting)"),
                Some(h) => format!("{up} ({h})"),
                None => up,
            }
        }
        "exited" => format!(
            "Exited ({}) {} ago",
            r.exit_code.unwrap_or(0),
            human_duration(now - r.finished.unwrap_or(now))
        ),
        "restarting" => format!(
            "Restarting ({}) {} ago",
            r.exit_code.unwrap_or(0),
            human_duration(now - r.finished.unwrap_or(now))
        ),
        _ => "Created".into(),
    }
}

/// Docker's COMMAND column: the quoted command line, cut at 20 characters with "…".
fn command_text(s: &ContainerSummary, no_trunc: bool) -> String {
    let cmd = s.config.args().join(" ");
    let cut = if !no_trunc && cmd.chars().count() > 20 {
        let mut c: String = cmd.chars().take(19).collect();
        c.push('…');
        c
    } else {
        cmd
    };
    format!("\"{cut}\"")
}

fn ps_filter(s: &ContainerSummary, filter: &str) -> Result<bool> {
    let r = &s.record;
    Ok(match filter.split_once('=') {
        Some(("status", v)) => r.status == v,
        Some(("name", v)) => r.name.contains(v),
        Some(("id", v)) => r.id.starts_with(v),
        Some(("ancestor", v)) => r.image_name == v || r.image_id == v || short_id(&r.image_id) == v,
        Some(("exited", v)) => {
            r.status == "exited" && r.exit_code.map(|c| c.to_string()) == Some(v.into())
        }
        Some(("label", v)) => match v.split_once('=') {
            Some((k, want)) => s.config.labels.get(k).is_some_and(|have| have == want),
            None => s.config.labels.contains_key(v),
        },
        Some(("health", v)) => {
            r.status == "running" && health_status(s).as_deref().unwrap_or("none") == v
        }
        _ => bail!(
            "invalid filter {filter:?}: use status=, name=, id=, label=, ancestor=, exited= or health="
        ),
    })
}

pub fn ps(engine: &Engine, a: PsArgs) -> Result<i32> {
    // Docker: a status or exited filter looks at stopped containers too; others do not.
    let all = a.all
        || a.last.is_some()
        || a.latest
        || a.filter
            .iter()
            .any(|f| f.starts_with("status=") || f.starts_with("exited="));
    let mut rows = engine.containers().list(all)?;
    for f in &a.filter {
        let mut kept = Vec::new();
        for r in rows {
            if ps_filter(&r, f)? {
                kept.push(r);
            }
        }
        rows = kept;
    }
    let lost = engine.networks().lost_networks(&rows)?;
    if !lost.is_empty() {
        eprintln!(
            "burrow: warning: {} lost {} network when the network holder ended; restart {}: burrow restart {}",
            lost.join(", "),
            if lost.len() == 1 { "its" } else { "their" },
            if lost.len() == 1 { "it" } else { "them" },
            lost.join(" ")
        );
    }
    let limit = if a.latest { Some(1) } else { a.last };
    if let Some(n) = limit {
        rows.truncate(n);
    }
    if a.quiet {
        let ids: String = rows
            .iter()
            .map(|r| {
                if a.no_trunc {
                    format!("{}\n", r.record.id)
                } else {
                    format!("{}\n", short_id(&r.record.id))
                }
            })
            .collect();
        out(&ids);
        return Ok(0);
    }
    let now = now_unix();
    let records: Vec<_> = rows
        .iter()
        .map(|s| {
            let r = &s.record;
            // Walking the writable layer costs, so only with -s or a format that asks.
            let wants_size = a.size || a.format.as_deref().is_some_and(|f| f.contains(".Size"));
            let size = if wants_size {
                let (rw, virt) = engine.containers().size(r);
                format!("{} (virtual {})", human_size(rw), human_size(virt))
            } else {
                String::new()
            };
            json!({
                "ID": if a.no_trunc { r.id.clone() } else { short_id(&r.id) },
                "Image": r.image_name,
                "Command": command_text(s, a.no_trunc),
                "CreatedAt": crate::engine::rfc3339(Some(r.created)),
                "RunningFor": format!("{} ago", human_duration(now - r.created)),
                "Ports": engine
                    .containers()
                    .published_ports(r)
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                "State": r.status,
                "Status": status_text(s),
                "Size": size,
                "Names": r.name,
                "Labels": s
                    .config
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                "Mounts": "",
                "Networks": s.config.network,
            })
        })
        .collect();
    let header = json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
        "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS",
        "Networks": "NETWORKS",
    });
    let default = if a.size {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}"
    } else {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    };
    print_records(a.format.as_deref(), default, &header, &records)
}
