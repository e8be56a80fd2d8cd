//! Containers on networks: the endpoints a start connects, `network connect|disconnect`
//! of a running or stopped container, the user's network holder.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::NetworkRefusal;
use super::checks::{allocate, check_ip_and_aliases};
use super::{NetworkInfo, Networks};
use crate::engine::{EngineError, Result};
use crate::network::holder::Holder;
use crate::plugin::Attach;
use crate::state;

impl Networks<'_> {
    /// The network `--network MODE` connects a container to, looked up by name or id; None
    /// for `none` and `host`, which need no connecting.
    pub(in crate::engine) fn container_network(&self, mode: &str) -> Result<Option<NetworkInfo>> {
        if mode == "none" || mode == "host" || mode.starts_with("container:") {
            return Ok(None);
        }
        let n = self.find(mode)?;
        match n.record.driver.as_str() {
            "bridge" | "macvlan" => Ok(Some(n)),
            d => match self.plugins.network_plugin(d)? {
                Some(_) => Ok(Some(n)),
                None if crate::plugin::is_builtin_network_driver(d) => {
                    Err(EngineError::UnsupportedNetwork(mode.to_string()))
                }
                None => Err(NetworkRefusal::PluginMissing {
                    network: n.record.name.clone(),
                    driver: d.to_string(),
                }
                .into()),
            },
        }
    }

    /// What the drivers are told to connect container `c`: every network it holds an address
    /// on, the one of `--network` first (as eth0), then those of `network connect`.
    pub(in crate::engine) fn endpoints(
        &self,
        c: &crate::state::ContainerRecord,
        config: &super::super::spec::ContainerConfig,
    ) -> Result<Vec<crate::network::Endpoint>> {
        if self.container_network(&config.network)?.is_none() {
            return Ok(vec![]);
        }
        let mut out = Vec::new();
        for row in self.state.container_endpoints(&c.id)? {
            let n = self.find(&row.network_id)?;
            let plugin = self.plugins.network_plugin(&n.record.driver)?;
            out.push(endpoint(c, config, &n, &row, plugin));
        }
        Ok(out)
    }
}

/// What network `n`'s driver is told to connect `c` with (one address, `row`'s).
fn endpoint(
    c: &crate::state::ContainerRecord,
    config: &super::super::spec::ContainerConfig,
    n: &NetworkInfo,
    row: &state::EndpointRow,
    plugin: Option<PathBuf>,
) -> crate::network::Endpoint {
    crate::network::Endpoint {
        plugin,
        allowed: crate::network::executor::Allowed {
            host_names: n.config.iface.iter().cloned().collect(),
            // A macvlan hangs off the interface its network was made with, and no other.
            parents: (n.record.driver == "macvlan")
                .then(|| n.config.options.get("parent").cloned())
                .flatten()
                .into_iter()
                .collect(),
        },
        host_loopback: n.host_loopback(),
        driver: n.record.driver.clone(),
        attach: Attach {
            container_id: c.id.clone(),
            name: c.name.clone(),
            hostname: Some(config.hostname.clone()),
            network: n.wit(),
            ifname: row.ifname.clone().unwrap_or_else(|| "eth0".into()),
            ips: vec![row.address.clone()],
            // --mac-address is for the network of --network.
            mac: row
                .ifname
                .is_none()
                .then(|| config.mac_address.clone())
                .flatten(),
            aliases: row
                .aliases
                .clone()
                .unwrap_or_else(|| config.dns.aliases.clone()),
            ports: vec![],
        },
    }
}

/// `network connect` options.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub aliases: Vec<String>,
    pub ip: Option<String>,
}

impl Networks<'_> {
    /// Held while a container's networks change: by a start from reading them until the
    /// container runs, and by `network connect`/`disconnect`.
    pub(in crate::engine) fn network_lock(&self, id: &str) -> Result<super::super::lock::FileLock> {
        let dir = self.paths.container_run_dir(id);
        std::fs::create_dir_all(&dir).map_err(|source| EngineError::Io {
            what: "create",
            path: dir.clone(),
            source,
        })?;
        super::super::lock::FileLock::exclusive(&dir.join("network.lock"))
    }

    /// The user's network holder, started first if none runs (see [`Holder::ensure`]).
    pub(in crate::engine) fn holder(&self) -> Result<Holder> {
        let way = self.file.rootless_network_cmd.unwrap_or_default();
        Holder::ensure(&self.paths.runtime.join("network"), self.ids.map(), way)
            .map_err(|e| NetworkRefusal::Holder(e).into())
    }

    /// The names of the running containers among `rows` that lost their networks with the
    /// network holder: they joined the user namespace of a holder that has since ended, and
    /// their veth pairs went with its network namespace. No new holder can reach them there;
    /// a restart connects them again.
    pub fn lost_networks(&self, rows: &[super::super::ContainerSummary]) -> Result<Vec<String>> {
        let live = Holder::find(&self.paths.runtime.join("network"))
            .and_then(|h| std::fs::read_link(h.userns()).ok());
        let mut lost = Vec::new();
        for s in rows {
            let c = &s.record;
            let Some(pid) = c.pid.filter(|p| {
                c.status == super::super::containers::RUNNING
                    && crate::runtime::proc::is_same_process(*p, c.pid_start)
            }) else {
                continue;
            };
            // In the live holder's user namespace (or unreadable): nothing lost. Checked
            // first, as it costs no lookup in the state.
            let theirs = crate::runtime::namespace_anchor(pid)
                .ok()
                .and_then(|p| std::fs::read_link(format!("/proc/{p}/ns/user")).ok());
            if theirs.is_none() || theirs == live {
                continue;
            }
            // Endpoints with a parent interface (macvlan) hang off the host, not the holder.
            let endpoints = self.endpoints(c, &s.config)?;
            if endpoints.iter().any(|e| e.in_holder()) {
                lost.push(c.name.clone());
            }
        }
        Ok(lost)
    }

    /// `network connect [--alias A] [--ip IP] NETWORK CONTAINER`: gives the container an
    /// address on one more network, as its next free `ethN`; a running container gets the
    /// interface at once, a stopped one when it starts. Returns the container's name.
    pub fn connect(&self, network: &str, container: &str, opts: ConnectOptions) -> Result<String> {
        let c = self.records.find(container)?;
        let _span =
            tracing::info_span!("network connect", container = %&c.id[..12], network).entered();
        let config = self.records.config(&c)?;
        let mode = config.network.as_str();
        if mode == "host" || mode == "none" || mode.starts_with("container:") {
            return Err(NetworkRefusal::NotConnectable {
                container: c.name.clone(),
                mode: if mode.starts_with("container:") {
                    "container:…"
                } else {
                    mode
                }
                .to_string(),
            }
            .into());
        }
        let n = match self.container_network(network)? {
            Some(n) => n,
            None => {
                return Err(NetworkRefusal::NotBridge {
                    network: network.to_string(),
                }
                .into());
            }
        };
        let _network = self.network_lock(&c.id)?;
        let rows = self.state.container_endpoints(&c.id)?;
        if rows.iter().any(|r| r.network_id == n.record.id) {
            return Err(NetworkRefusal::EndpointExists {
                container: c.name.clone(),
                network: n.record.name.clone(),
            }
            .into());
        }
        let requested = check_ip_and_aliases(opts.ip.as_deref(), &opts.aliases, Some(&n))?;
        let ifname = (1..)
            .map(|i| format!("eth{i}"))
            .find(|f| !rows.iter().any(|r| r.ifname.as_deref() == Some(f.as_str())))
            .expect("a free interface name");
        let address = self.state.write(|tx| {
            let address = allocate(tx, &n, &c.id, requested)?;
            state::set_endpoint(tx, &n.record.id, &c.id, &ifname, &opts.aliases)?;
            Ok(address)
        })?;
        self.refresh_dns(&n.record.id);
        if let Some(pid) = self.records.pid_if_running(c.clone())? {
            let row = state::EndpointRow {
                network_id: n.record.id.clone(),
                address: address.to_string(),
                ifname: Some(ifname),
                aliases: Some(opts.aliases.clone()),
            };
            let plugin = self.plugins.network_plugin(&n.record.driver)?;
            let e = endpoint(&c, &config, &n, &row, plugin);
            let connected = self.holder().and_then(|h| {
                crate::network::connect(&h, pid, self.plugins.cache_dir(), &[e])
                    .map_err(EngineError::Runtime)
            });
            if let Err(err) = connected {
                // Nothing half-done stays: the address goes back.
                self.state
                    .write(|tx| state::remove_allocation(tx, &n.record.id, &c.id))?;
                self.refresh_dns(&n.record.id);
                return Err(err);
            }
        }
        self.hosts_entry(&c, &config.hostname, &address.to_string(), true);
        self.network_event("connect", &n, &c);
        Ok(c.name)
    }

    /// `network disconnect NETWORK CONTAINER`: takes the container off a network; a running
    /// container loses that interface at once. The address is released.
    pub fn disconnect(&self, network: &str, container: &str) -> Result<String> {
        let c = self.records.find(container)?;
        let _span =
            tracing::info_span!("network disconnect", container = %&c.id[..12], network).entered();
        let n = self.find(network)?;
        let _network = self.network_lock(&c.id)?;
        let rows = self.state.container_endpoints(&c.id)?;
        let Some(row) = rows.into_iter().find(|r| r.network_id == n.record.id) else {
            return Err(NetworkRefusal::NotConnected {
                container: c.name.clone(),
                network: n.record.name.clone(),
            }
            .into());
        };
        if let Some(pid) = self.records.pid_if_running(c.clone())? {
            let dir = self.paths.runtime.join("network");
            // A holder that is gone took the container's links with it.
            if let Some(holder) = Holder::find(&dir) {
                let ifname = row.ifname.as_deref().unwrap_or("eth0");
                crate::network::disconnect(&holder, pid, ifname).map_err(EngineError::Runtime)?;
            }
        }
        self.state
            .write(|tx| state::remove_allocation(tx, &n.record.id, &c.id))?;
        self.refresh_dns(&n.record.id);
        let hostname = self.records.config(&c)?.hostname;
        self.hosts_entry(&c, &hostname, &row.address, false);
        self.network_event("disconnect", &n, &c);
        Ok(c.name)
    }

    /// Adds (`present`) or removes the line `ADDRESS\tHOSTNAME` in the container's /etc/hosts,
    /// as Docker does for each network a container joins or leaves. Written in place: a
    /// running container has the file bind-mounted and would not see a new one. Best effort
    /// (logged).
    fn hosts_entry(
        &self,
        c: &crate::state::ContainerRecord,
        hostname: &str,
        address: &str,
        present: bool,
    ) {
        let path = self.paths.container_dir(&c.id).join("userdata/hosts");
        let line = format!("{address}\t{hostname}");
        let updated = std::fs::read_to_string(&path).and_then(|text| {
            let mut lines: Vec<&str> = text.lines().filter(|l| *l != line).collect();
            if present {
                lines.push(&line);
            }
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            std::fs::write(&path, text)
        });
        if let Err(err) = updated {
            tracing::warn!(%err, path = %path.display(), "cannot update the container's /etc/hosts");
        }
    }

    fn network_event(&self, action: &str, n: &NetworkInfo, c: &crate::state::ContainerRecord) {
        let attrs = BTreeMap::from([
            ("container".to_string(), c.id.clone()),
            ("name".to_string(), n.record.name.clone()),
            ("type".to_string(), n.record.driver.clone()),
        ]);
        super::super::events::record(self.state, "network", action, &n.record.id, &attrs);
    }
}
