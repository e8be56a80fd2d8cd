//! `network create|ls|inspect|rm|prune|connect|disconnect`, with Docker's flags and output.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use super::format::short_id;
use super::image::{print_inspect, print_records};
use super::out;
use crate::engine::Engine;
use crate::engine::networks::{ConnectOptions, NetworkCreate, NetworkInfo};

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show networks as JSON
    Inspect {
        /// Format the output with a Go template
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove all networks no container uses
    Prune {
        /// Do not prompt (burrow never prompts; accepted for Docker's scripts)
        #[arg(short, long)]
        force: bool,
    },
    /// Connect a container to a network
    Connect {
        /// A name the container answers to on this network (built-in DNS)
        #[arg(long = "alias", value_name = "ALIAS")]
        aliases: Vec<String>,
        /// The container's IPv4 address on this network
        #[arg(long = "ip", value_name = "IPv4")]
        ip: Option<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network
    Disconnect {
        /// Accepted for Docker's scripts (a container always leaves at once)
        #[arg(short, long)]
        force: bool,
        network: String,
        container: String,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    pub name: String,
    /// Driver: bridge (the default), macvlan, or an installed network plugin
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR form, e.g. 10.89.1.0/24
    #[arg(long, value_name = "CIDR")]
    pub subnet: Vec<String>,
    /// Hand out addresses from this part of the subnet only
    #[arg(long, value_name = "CIDR")]
    pub ip_range: Vec<String>,
    /// Gateway of the subnet (the first address by default)
    #[arg(long, value_name = "IP")]
    pub gateway: Vec<String>,
    /// No route outside the network
    #[arg(long)]
    pub internal: bool,
    /// Driver options, KEY=VALUE
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
    pub opt: Vec<String>,
    /// Labels, KEY=VALUE
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// IPv6 (not available yet: burrow networks are IPv4)
    #[arg(long)]
    pub ipv6: bool,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only show ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate ids
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter: name=, id=, driver=, label=KEY[=VALUE]
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Format the output with a Go template (or "json")
    #[arg(long)]
    pub format: Option<String>,
}

fn key_values(items: &[String], what: &str) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ if !item.is_empty() && what == "--label" => Ok((item.clone(), String::new())),
            _ => bail!("invalid {what} {item:?}: use KEY=VALUE"),
        })
        .collect()
}

pub fn network(engine: &Engine, cmd: NetworkCommand) -> Result<i32> {
    match cmd {
        NetworkCommand::Create(a) => create(engine, a),
        NetworkCommand::Ls(a) => ls(engine, a),
        NetworkCommand::Inspect { format, networks } => {
            let mut docs = Vec::new();
            let mut code = 0;
            for key in &networks {
                match engine.networks().find(key) {
                    Ok(n) => docs.push(n.inspect()),
                    Err(e) => {
                        eprintln!("burrow: {e}");
                        code = 1;
                    }
                }
            }
            print_inspect(&docs, format.as_deref())?;
            Ok(code)
        }
        NetworkCommand::Rm { networks } => {
            let mut code = 0;
            for key in &networks {
                match engine.networks().remove(key) {
                    Ok(_) => out(&format!("{key}\n")),
                    Err(e) => {
                        eprintln!("burrow: {e}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        NetworkCommand::Connect {
            aliases,
            ip,
            network,
            container,
        } => {
            let opts = ConnectOptions { aliases, ip };
            engine.networks().connect(&network, &container, opts)?;
            Ok(0)
        }
        NetworkCommand::Disconnect {
            force: _,
            network,
            container,
        } => {
            engine.networks().disconnect(&network, &container)?;
            Ok(0)
        }
        NetworkCommand::Prune { force: _ } => {
            let removed = engine.networks().prune()?;
            if !removed.is_empty() {
                let names: String = removed.iter().map(|n| format!("{n}\n")).collect();
                out(&format!("Deleted Networks:\n{names}"));
            }
            Ok(0)
        }
    }
}

fn create(engine: &Engine, a: CreateArgs) -> Result<i32> {
    if a.ipv6 {
        bail!("--ipv6 is not available yet: burrow networks are IPv4 only; leave it out");
    }
    let req = NetworkCreate {
        name: a.name,
        driver: a.driver,
        subnets: a.subnet,
        ip_ranges: a.ip_range,
        gateways: a.gateway,
        internal: a.internal,
        options: key_values(&a.opt, "--opt")?,
        labels: key_values(&a.label, "--label")?.into_iter().collect(),
    };
    let id = engine.networks().create(req)?;
    out(&format!("{id}\n"));
    Ok(0)
}

/// Docker's `network ls --filter`: every given key must match (values of one key: any).
fn matches(n: &NetworkInfo, filters: &BTreeMap<String, Vec<String>>) -> bool {
    filters.iter().all(|(key, values)| {
        values.iter().any(|v| match key.as_str() {
            "name" => n.record.name.contains(v.as_str()),
            "id" => n.record.id.starts_with(v.as_str()),
            "driver" => n.record.driver == *v,
            "label" => match v.split_once('=') {
                Some((k, val)) => n.config.labels.get(k).is_some_and(|x| x == val),
                None => n.config.labels.contains_key(v),
            },
            _ => false,
        })
    })
}

fn ls(engine: &Engine, a: LsArgs) -> Result<i32> {
    let mut filters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &a.filter {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad format of filter {f:?} (expected name=value)");
        };
        if !["name", "id", "driver", "label"].contains(&k) {
            bail!("invalid filter '{k}': use name, id, driver or label");
        }
        filters.entry(k.into()).or_default().push(v.into());
    }
    let networks: Vec<NetworkInfo> = engine
        .networks()
        .list()?
        .into_iter()
        .filter(|n| matches(n, &filters))
        .collect();
    let id = |n: &NetworkInfo| {
        if a.no_trunc {
            n.record.id.clone()
        } else {
            short_id(&n.record.id)
        }
    };
    if a.quiet {
        out(&networks
            .iter()
            .map(|n| format!("{}\n", id(n)))
            .collect::<String>());
        return Ok(0);
    }
    let records: Vec<serde_json::Value> = networks
        .iter()
        .map(|n| {
            json!({
                "ID": id(n),
                "Name": n.record.name,
                "Driver": n.record.driver,
                "Scope": "local",
                "IPv6": false,
                "Internal": n.config.internal,
                "Labels": n.config.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                "CreatedAt": crate::engine::rfc3339(Some(n.record.created)),
            })
        })
        .collect();
    let header = json!({
        "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED",
    });
    print_records(
        a.format.as_deref(),
        "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
        &header,
        &records,
    )
}
