//! `plugin install|ls|inspect|rm|enable|disable`: log and network drivers anyone can write,
//! as WebAssembly components (see plugin-sdk/, examples/log-plugin/ and examples/net-plugin/).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use super::out;
use crate::engine::Engine;
use crate::engine::plugins::{CAPABILITIES, GrantSet, InstalledPlugin};

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Install a plugin from a .wasm component, granting what it asks for
    Install(InstallArgs),
    /// List installed plugins
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show an installed plugin as JSON
    Inspect { names: Vec<String> },
    /// Remove plugins
    #[command(alias = "remove")]
    Rm {
        /// Remove even if containers use it
        #[arg(short, long)]
        force: bool,
        names: Vec<String>,
    },
    /// Let containers use a plugin again
    Enable { name: String },
    /// Stop containers from using a plugin
    Disable {
        #[arg(short, long)]
        force: bool,
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct InstallArgs {
    pub path: PathBuf,
    /// Capabilities to grant, comma-separated: log-dir, network, http, secrets
    #[arg(long, value_delimiter = ',', value_name = "CAPS")]
    pub grant: Vec<String>,
    /// Grant everything the plugin asks for without asking
    #[arg(long)]
    pub grant_all_permissions: bool,
    /// Install under this name instead of the one the plugin gives
    #[arg(long)]
    pub alias: Option<String>,
    /// Install disabled
    #[arg(long)]
    pub disable: bool,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only show names
    #[arg(short, long)]
    pub quiet: bool,
}

/// What a plugin asks for, one line each, as shown before granting.
fn describe_asks(p: &InstalledPlugin) -> Vec<String> {
    let mut lines = Vec::new();
    if p.asks.log_dir {
        lines.push("log-dir: a directory of its own per container, for its log files".into());
    }
    if p.asks.network {
        let mut l =
            "network: connections to the addresses the container's log options name".to_string();
        if !p.default_addresses.is_empty() {
            l.push_str(&format!(", else {}", p.default_addresses.join(", ")));
        }
        lines.push(l);
    }
    if p.asks.http {
        let mut l = "http: HTTP requests to URLs the container's log options name".to_string();
        if !p.http_patterns.is_empty() {
            l.push_str(&format!(" and to {}", p.http_patterns.join(", ")));
        }
        lines.push(l);
    }
    if !p.asks.secrets.is_empty() {
        lines.push(format!("secrets: {}", p.asks.secrets.join(", ")));
    }
    lines
}

pub fn plugin(engine: &Engine, cmd: PluginCommand) -> Result<i32> {
    match cmd {
        PluginCommand::Install(a) => install(engine, a),
        PluginCommand::Ls(a) => {
            let plugins = engine.plugins().list()?;
            if a.quiet {
                for p in plugins {
                    out(&format!("{}\n", p.name));
                }
                return Ok(0);
            }
            let mut rows = vec!["ID\tNAME\tDESCRIPTION\tENABLED".to_string()];
            for p in plugins {
                let id = p.digest.trim_start_matches("sha256:");
                rows.push(format!(
                    "{}\t{}\t{}\t{}",
                    &id[..12.min(id.len())],
                    p.name,
                    p.description,
                    p.enabled
                ));
            }
            out(&super::format::align(&rows));
            Ok(0)
        }
        PluginCommand::Inspect { names } => {
            let mut all = Vec::new();
            for n in &names {
                all.push(serde_json::to_value(engine.plugins().inspect(n)?)?);
            }
            out(&format!("{}\n", serde_json::to_string_pretty(&all)?));
            Ok(0)
        }
        PluginCommand::Rm { force, names } => {
            for n in &names {
                engine.plugins().remove(n, force)?;
                out(&format!("{n}\n"));
            }
            Ok(0)
        }
        PluginCommand::Enable { name } => {
            engine.plugins().set_enabled(&name, true)?;
            out(&format!("{name}\n"));
            Ok(0)
        }
        PluginCommand::Disable { force, name } => {
            if force {
                engine.plugins().set_enabled_forced(&name, false)?;
            } else {
                engine.plugins().set_enabled(&name, false)?;
            }
            out(&format!("{name}\n"));
            Ok(0)
        }
    }
}

fn install(engine: &Engine, a: InstallArgs) -> Result<i32> {
    for g in &a.grant {
        if !CAPABILITIES.contains(&g.as_str()) {
            bail!(
                "unknown capability {g:?} in --grant: use {}",
                CAPABILITIES.join(", ")
            );
        }
    }
    let candidate = engine.plugins().candidate(&a.path, a.alias.as_deref())?;
    let p = &candidate.plugin;
    let asks = describe_asks(p);
    let asked = p.asks.names();
    let missing: Vec<&str> = asked
        .iter()
        .copied()
        .filter(|n| !a.grant.iter().any(|g| g == n))
        .collect();
    let granted = if a.grant_all_permissions || missing.is_empty() {
        let names: Vec<String> = asked.iter().map(|s| s.to_string()).collect();
        GrantSet::grant(&p.asks, &names)
    } else if std::io::stdin().is_terminal() {
        let mut err = std::io::stderr().lock();
        writeln!(
            err,
            "Plugin {:?} is requesting the following privileges:",
            p.name
        )?;
        for l in &asks {
            writeln!(err, " - {l}")?;
        }
        write!(err, "Do you grant the above permissions? [y/N] ")?;
        err.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("plugin {:?} not installed: permissions not granted", p.name);
        }
        let names: Vec<String> = asked.iter().map(|s| s.to_string()).collect();
        GrantSet::grant(&p.asks, &names)
    } else {
        bail!(
            "plugin {:?} asks for {}; grant it with --grant {} (or --grant-all-permissions)",
            p.name,
            asks.join("; "),
            missing.join(",")
        );
    };
    let disable = a.disable;
    let mut installed = engine.plugins().install(candidate, granted)?;
    if disable {
        engine.plugins().set_enabled(&installed.name, false)?;
        installed.enabled = false;
    }
    out(&format!("Installed plugin {}\n", installed.name));
    Ok(0)
}
