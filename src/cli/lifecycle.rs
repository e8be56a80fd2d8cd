//! Commands on a container's lifecycle after `run`: stop, kill, restart, wait, rename,
//! prune, exec, top.

use anyhow::Result;
use clap::Args;

use super::format::{align, now_unix};
use super::out;
use crate::engine::networks::NetworkRefusal;
use crate::engine::{Engine, EngineError};

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Keep stdin open
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Run in the background and return at once
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// User: name|uid[:group|gid]
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    pub container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    pub container: String,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Seconds to wait for the stop signal before SIGKILL
    #[arg(short = 't', long = "time", alias = "timeout", value_name = "SECONDS")]
    pub time: Option<u32>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Signal to send
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

#[derive(Args, Debug)]
pub struct ContainerPruneArgs {
    /// Do not ask (burrow never asks)
    #[arg(short, long)]
    pub force: bool,
}

/// Runs `f` for every container named, printing each name on success and each error on
/// its own line, as Docker does; exit status 1 when any failed.
pub(super) fn each(
    keys: &[String],
    mut f: impl FnMut(&str) -> Result<(), EngineError>,
) -> Result<i32> {
    let mut code = 0;
    for key in keys {
        match f(key) {
            Ok(()) => out(&format!("{key}\n")),
            Err(e) => {
                eprintln!("burrow: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub fn stop(engine: &Engine, a: StopArgs) -> Result<i32> {
    each(&a.containers, |key| {
        engine.containers().stop(key, a.time).map(|_| ())
    })
}

pub fn restart(engine: &Engine, a: StopArgs) -> Result<i32> {
    each(&a.containers, |key| {
        engine.containers().restart(key, a.time).map(|_| ())
    })
}

pub fn kill(engine: &Engine, a: KillArgs) -> Result<i32> {
    each(&a.containers, |key| {
        engine.containers().kill(key, &a.signal).map(|_| ())
    })
}

pub fn wait(engine: &Engine, a: WaitArgs) -> Result<i32> {
    let mut code = 0;
    for key in &a.containers {
        match engine.containers().wait(key) {
            Ok(status) => out(&format!("{status}\n")),
            Err(e) => {
                eprintln!("burrow: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub fn exec(engine: &Engine, a: ExecArgs) -> Result<i32> {
    let opts = crate::engine::ExecOptions {
        command: a.command,
        env: a.env,
        workdir: a.workdir,
        user: a.user,
        tty: a.tty,
        interactive: a.interactive,
        detach: a.detach,
    };
    Ok(engine.containers().exec(&a.container, &opts)?)
}

/// Docker's `top` columns (ps -ef): UID PID PPID C STIME TTY TIME CMD.
pub fn top(engine: &Engine, a: TopArgs) -> Result<i32> {
    let procs = engine.containers().top(&a.container)?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as u64;
    let boot = boot_time().unwrap_or(0);
    let now = now_unix() as u64;
    let mut rows = vec!["UID\tPID\tPPID\tC\tSTIME\tTTY\tTIME\tCMD".to_string()];
    for p in procs {
        let started = boot + p.start_time_ticks / ticks;
        let cpu_secs = p.cpu_ticks / ticks;
        let elapsed = now.saturating_sub(started).max(1);
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(p.uid))
            .ok()
            .flatten()
            .map_or_else(|| p.uid.to_string(), |u| u.name);
        let cmd = if p.cmdline.is_empty() {
            format!("[{}]", p.comm)
        } else {
            p.cmdline.join(" ")
        };
        rows.push(format!(
            "{user}\t{}\t{}\t{}\t{}\t?\t{:02}:{:02}:{:02}\t{cmd}",
            p.pid,
            p.ppid,
            cpu_secs * 100 / elapsed,
            clock_time(started),
            cpu_secs / 3600,
            cpu_secs / 60 % 60,
            cpu_secs % 60,
        ));
    }
    out(&align(&rows));
    Ok(0)
}

/// Seconds since the epoch at boot (/proc/stat btime).
fn boot_time() -> Option<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// HH:MM (UTC) of a Unix time, as ps prints STIME for processes started today.
fn clock_time(unix: u64) -> String {
    format!("{:02}:{:02}", unix / 3600 % 24, unix / 60 % 60)
}

pub fn rename(engine: &Engine, a: RenameArgs) -> Result<i32> {
    engine.containers().rename(&a.container, &a.new_name)?;
    Ok(0)
}

pub fn prune(engine: &Engine) -> Result<i32> {
    let removed = engine.containers().prune()?;
    let mut text = String::new();
    if !removed.is_empty() {
        text.push_str("Deleted Containers:\n");
        for id in &removed {
            text.push_str(&format!("{id}\n"));
        }
        text.push('\n');
    }
    text.push_str("Total reclaimed space: 0B\n");
    out(&text);
    Ok(0)
}

#[derive(Args, Debug)]
pub struct PortArgs {
    pub container: String,
    /// Only this port: PORT[/PROTO]
    pub private: Option<String>,
}

/// `port CONTAINER [PRIVATE[/PROTO]]`: the published ports, as Docker prints them.
pub fn port(engine: &Engine, a: PortArgs) -> Result<i32> {
    let c = engine.containers().find(&a.container)?;
    let ports = engine.containers().published_ports(&c);
    let want = a.private.as_deref().map(|p| {
        if p.contains('/') {
            p.to_string()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut text = String::new();
    for p in &ports {
        match &want {
            None => text.push_str(&format!("{} -> {}\n", p.binding.key(), p.host)),
            Some(w) if *w == p.binding.key() => text.push_str(&format!("{}\n", p.host)),
            Some(_) => {}
        }
    }
    if let (Some(w), true) = (&want, text.is_empty()) {
        return Err(EngineError::Network(NetworkRefusal::NoPublicPort {
            port: w.clone(),
            container: c.name.clone(),
        })
        .into());
    }
    out(&text);
    Ok(0)
}
