//! Container `inspect` output in Docker's JSON shape.

use serde_json::{Value, json};

use super::{Containers, EXITED, RESTARTING, RUNNING};
use crate::engine::spec::ContainerConfig;
use crate::engine::{Result, rfc3339};
use crate::state::ContainerRecord;

impl Containers<'_> {
    pub fn inspect(&self, c: &ContainerRecord) -> Result<Value> {
        let config: ContainerConfig = self.records.config(c)?;
        let args = config.args();
        let running = c.status == RUNNING;
        let restarting = c.status == RESTARTING;
        let dir = self.paths.container_dir(&c.id);
        let userdata = dir.join("userdata");
        let log_path = self.log_path(&c.id, &config);
        let log_dropped = self.log_drops(&c.id);
        Ok(json!({
            "Id": c.id,
            "Created": rfc3339(Some(c.created)),
            "Path": args.first().cloned().unwrap_or_default(),
            "Args": args.iter().skip(1).collect::<Vec<_>>(),
            "State": {
                "Status": c.status,
                "Running": running,
                "Paused": false,
                "Restarting": restarting,
                "OOMKilled": false,
                "Dead": false,
                "Pid": if running { c.pid.unwrap_or(0) } else { 0 },
                "ExitCode": if c.status == EXITED || restarting { c.exit_code.unwrap_or(0) } else { 0 },
                "Error": c.error.clone().unwrap_or_default(),
                "StartedAt": rfc3339(c.started),
                "FinishedAt": rfc3339(c.finished),
                "Health": c
                    .health
                    .as_deref()
                    .filter(|_| config.healthcheck.is_some())
                    .and_then(|h| serde_json::from_str::<Value>(h).ok()),
            },
            "Image": c.image_id,
            "ResolvConfPath": userdata.join("resolv.conf"),
            "HostnamePath": userdata.join("hostname"),
            "HostsPath": userdata.join("hosts"),
            "LogPath": log_path.map(|p| p.display().to_string()).unwrap_or_default(),
            // burrow's own: lines the log driver could not take, over all runs.
            "LogDropped": log_dropped,
            "Name": format!("/{}", c.name),
            "RestartCount": c.restart_count,
            "Driver": config.storage_driver,
            "Platform": "linux",
            "HostConfig": {
                "NetworkMode": config.network,
                "PortBindings": port_bindings(&config.ports),
                "ExtraHosts": config.dns.extra_hosts,
                "Dns": config.dns.servers,
                "DnsSearch": config.dns.search,
                "DnsOptions": config.dns.options,
                "ReadonlyRootfs": config.read_only,
                "AutoRemove": config.auto_remove,
                "RestartPolicy": {
                    "Name": config.restart_policy.name(),
                    "MaximumRetryCount": config.restart_policy.max_retries(),
                },
                "Init": config.init,
                "LogConfig": {
                    "Type": config.log.driver,
                    "Config": config.log.opts,
                },
            },
            "Mounts": [],
            "Config": {
                "Hostname": config.hostname,
                "User": config.user,
                "AttachStdin": config.interactive,
                "AttachStdout": true,
                "AttachStderr": true,
                "Tty": config.tty,
                "OpenStdin": config.interactive,
                "StdinOnce": config.interactive,
                "Env": config.env,
                "Cmd": config.cmd,
                "Image": c.image_name,
                "WorkingDir": config.working_dir,
                "Labels": config.labels,
                "StopSignal": config.stop_signal,
                "Healthcheck": config.healthcheck.as_ref().map(|h| json!({
                    "Test": h.command,
                    "Interval": h.interval_ms * 1_000_000,
                    "Timeout": h.timeout_ms * 1_000_000,
                    "StartPeriod": h.start_period_ms * 1_000_000,
                    "Retries": h.retries,
                })),
                "StopTimeout": config.stop_timeout,
                "Entrypoint": if config.entrypoint.is_empty() { Value::Null } else { json!(config.entrypoint) },
            },
            "NetworkSettings": self.network_settings(c, &config)?,
        }))
    }

    /// `NetworkSettings`: per network, the address the container holds there. The top-level
    /// fields repeat the first network's, as podman fills them for any network (Docker only
    /// for the default bridge).
    fn network_settings(&self, c: &ContainerRecord, config: &ContainerConfig) -> Result<Value> {
        let mut ports = serde_json::Map::new();
        for p in self.published_ports(c) {
            let entry =
                json!({ "HostIp": p.host.ip().to_string(), "HostPort": p.host.port().to_string() });
            push_port(&mut ports, p.binding.key(), entry);
        }
        if !matches!(
            self.networks.container_network(&config.network),
            Ok(Some(_))
        ) {
            return Ok(json!({ "Networks": { config.network.clone(): {} }, "Ports": ports }));
        }
        let mut networks = serde_json::Map::new();
        let mut first = None;
        for row in self.state.container_endpoints(&c.id)? {
            let n = self.networks.find(&row.network_id)?;
            let subnet = n.config.subnets.first();
            let prefix: u8 = subnet
                .and_then(|s| s.subnet.split_once('/'))
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or(0);
            let gateway = subnet.and_then(|s| s.gateway.clone()).unwrap_or_default();
            let aliases = row.aliases.unwrap_or_else(|| config.dns.aliases.clone());
            first.get_or_insert((row.address.clone(), prefix, gateway.clone()));
            networks.insert(
                n.record.name.clone(),
                json!({
                    "NetworkID": n.record.id,
                    "IPAddress": row.address,
                    "IPPrefixLen": prefix,
                    "Gateway": gateway,
                    "Aliases": aliases,
                }),
            );
        }
        let (address, prefix, gateway) = first.unwrap_or_default();
        Ok(json!({
            "Ports": ports,
            "IPAddress": address,
            "IPPrefixLen": prefix,
            "Gateway": gateway,
            "Networks": networks,
        }))
    }
}

/// `HostConfig.PortBindings`: what `-p`/`-P` asked for (host port "" = any).
fn port_bindings(ports: &[crate::network::ports::PortBinding]) -> Value {
    let mut map = serde_json::Map::new();
    for p in ports {
        let entry = json!({
            "HostIp": p.host_ip.clone().unwrap_or_default(),
            "HostPort": p.host_ports(),
        });
        push_port(&mut map, p.key(), entry);
    }
    Value::Object(map)
}

/// Docker's port maps list every binding of one container port under its key.
fn push_port(map: &mut serde_json::Map<String, Value>, key: String, entry: Value) {
    match map.entry(key).or_insert_with(|| json!([])) {
        Value::Array(list) => list.push(entry),
        other => *other = json!([entry]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_look_like_docker() {
        assert_eq!(rfc3339(None), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339(Some(0)), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339(Some(86400)), "1970-01-02T00:00:00.000000000Z");
    }
}
