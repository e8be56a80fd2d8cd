//! Networks: `network create|ls|inspect|rm|prune`. The network driver (a WebAssembly plugin,
//! plugins/net-*) fills in a new network's defaults or refuses its options; the host checks the
//! address pools (src/network/ipam.rs) and records the network. The predefined `bridge`, `host`
//! and `none` networks are recorded on first use, as Docker has them from the start.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::{Engine, EngineError, Result, now_unix, random_id};
use crate::network::holder::Holder;
use crate::network::ipam::Pool;
use crate::plugin::{Attach, HostFacts, LinkInfo, Network, PluginError, Subnet};
use crate::state::{self, NetworkRecord};

/// Docker's predefined networks, which cannot be created or removed.
pub const PREDEFINED: [(&str, &str); 3] =
    [("bridge", "bridge"), ("host", "host"), ("none", "none")];

/// What `network create` was asked for.
#[derive(Debug, Clone, Default)]
pub struct NetworkCreate {
    pub name: String,
    pub driver: String,
    pub subnets: Vec<String>,
    pub ip_ranges: Vec<String>,
    pub gateways: Vec<String>,
    pub internal: bool,
    pub options: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
}

/// A network as recorded: the driver's filled-in configuration plus what only the host uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    pub iface: Option<String>,
    pub subnets: Vec<SubnetConfig>,
    pub internal: bool,
    pub dns: bool,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetConfig {
    pub subnet: String,
    pub ip_range: Option<String>,
    pub gateway: Option<String>,
}

impl SubnetConfig {
    pub fn pool(&self) -> std::result::Result<Pool, crate::network::ipam::IpamError> {
        Pool::new(
            &self.subnet,
            self.ip_range.as_deref(),
            self.gateway.as_deref(),
        )
    }
}

/// A recorded network with its decoded configuration.
#[derive(Debug, Clone)]
pub struct NetworkInfo {
    pub record: NetworkRecord,
    pub config: NetworkConfig,
    /// Containers holding an address on it: id → address.
    pub containers: BTreeMap<String, String>,
}

impl Engine {
    /// `network create`: the new network's id.
    pub fn create_network(&mut self, req: NetworkCreate) -> Result<String> {
        let _span = tracing::info_span!("network_create", name = %req.name).entered();
        self.ensure_predefined_networks()?;
        check_name(&req.name)?;
        if self.state.networks()?.iter().any(|n| n.name == req.name) {
            return Err(state::StateError::NetworkExists(req.name.clone()).into());
        }
        if req.ip_ranges.len() > req.subnets.len() || req.gateways.len() > req.subnets.len() {
            return Err(EngineError::NetworkConfig(
                "every --ip-range or --gateway needs a --subnet: give as many --subnet flags"
                    .into(),
            ));
        }
        let id = random_id()?;
        let record = self.new_network(&id, &req)?;
        let name = record.name.clone();
        let driver = record.driver.clone();
        self.state.write(|tx| state::insert_network(tx, &record))?;
        let attrs = BTreeMap::from([("name".to_string(), name), ("type".to_string(), driver)]);
        self.record_event("network", "create", &id, &attrs);
        Ok(id)
    }

    /// Asks the driver for the network's defaults and checks its pools against the others.
    fn new_network(&mut self, id: &str, req: &NetworkCreate) -> Result<NetworkRecord> {
        let plugin = self.network_plugin(&req.driver)?;
        let driver = self
            .plugin_host()?
            .network_driver_at(&req.driver, plugin.as_deref())?;
        let existing = self.network_infos()?;
        let used: Vec<Ipv4Net> = existing
            .iter()
            .flat_map(|n| &n.config.subnets)
            .filter_map(|s| s.subnet.parse().ok())
            .collect();
        let asked = Network {
            id: id.to_string(),
            name: req.name.clone(),
            driver: req.driver.clone(),
            iface: None,
            subnets: req
                .subnets
                .iter()
                .enumerate()
                .map(|(i, cidr)| Subnet {
                    cidr: cidr.clone(),
                    gateway: req.gateways.get(i).cloned(),
                })
                .collect(),
            ipv6: false,
            internal: req.internal,
            dns: req.name != "bridge",
            options: with_default_mtu(&req.driver, &req.options)
                .into_iter()
                .map(|(key, value)| crate::plugin::Kv { key, value })
                .collect(),
        };
        let facts = host_facts(&used);
        let filled = driver.create(&asked, &facts).map_err(|e| match e {
            PluginError::Config(msg) | PluginError::Unsupported { msg, .. } => {
                EngineError::NetworkConfig(msg)
            }
            e => e.into(),
        })?;
        if let Some(iface) = filled
            .iface
            .as_deref()
            .filter(|i| !crate::network::executor::host_ifname_ok(i))
        {
            return Err(EngineError::NetworkConfig(format!(
                "network driver {:?} chose the interface name {iface:?}, which burrow refuses (the network holder's own, or not a valid name)",
                req.driver
            )));
        }
        let mut subnets = Vec::new();
        for (i, s) in filled.subnets.iter().enumerate() {
            let sc = SubnetConfig {
                subnet: s.cidr.clone(),
                ip_range: req.ip_ranges.get(i).cloned(),
                gateway: s.gateway.clone(),
            };
            let pool = sc
                .pool()
                .map_err(|e| EngineError::NetworkConfig(e.to_string()))?;
            if let Some(other) = used
                .iter()
                .find(|u| u.contains(&pool.subnet) || pool.subnet.contains(*u))
            {
                return Err(EngineError::NetworkConfig(format!(
                    "Pool overlaps with other one on this address space: {} overlaps {other}; choose another --subnet",
                    pool.subnet
                )));
            }
            subnets.push(SubnetConfig {
                gateway: Some(pool.gateway.to_string()),
                ..sc
            });
        }
        let config = NetworkConfig {
            iface: filled.iface,
            subnets,
            internal: filled.internal,
            dns: filled.dns,
            options: filled
                .options
                .into_iter()
                .map(|kv| (kv.key, kv.value))
                .collect(),
            labels: req.labels.clone(),
        };
        Ok(NetworkRecord {
            id: id.to_string(),
            name: req.name.clone(),
            driver: req.driver.clone(),
            config: serde_json::to_string(&config).expect("network config serialises"),
            created: now_unix(),
            last_address: None,
        })
    }

    /// Records `bridge`, `host` and `none` the first time any network command runs.
    fn ensure_predefined_networks(&mut self) -> Result<()> {
        let have: BTreeSet<String> = self.state.networks()?.into_iter().map(|n| n.name).collect();
        for (name, driver) in PREDEFINED {
            if have.contains(name) {
                continue;
            }
            let id = random_id()?;
            let req = NetworkCreate {
                name: name.into(),
                driver: driver.into(),
                ..Default::default()
            };
            let record = self.new_network(&id, &req)?;
            match self.state.write(|tx| state::insert_network(tx, &record)) {
                // Another command recorded it first.
                Ok(()) | Err(state::StateError::NetworkExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn network_infos(&self) -> Result<Vec<NetworkInfo>> {
        self.state
            .networks()?
            .into_iter()
            .map(|record| {
                let config = serde_json::from_str(&record.config).map_err(|e| {
                    EngineError::NetworkConfig(format!(
                        "network {} has a malformed record ({e}); remove it with `burrow network rm {}`",
                        record.name, record.name
                    ))
                })?;
                let containers = self
                    .state
                    .allocations(&record.id)?
                    .into_iter()
                    .map(|(addr, c)| (c, addr))
                    .collect();
                Ok(NetworkInfo {
                    record,
                    config,
                    containers,
                })
            })
            .collect()
    }

    /// All networks, predefined ones first, then by creation.
    pub fn networks(&mut self) -> Result<Vec<NetworkInfo>> {
        self.ensure_predefined_networks()?;
        let mut all = self.network_infos()?;
        all.sort_by_key(|n| {
            (
                PREDEFINED
                    .iter()
                    .position(|(p, _)| *p == n.record.name)
                    .unwrap_or(3),
                n.record.created,
                n.record.name.clone(),
            )
        });
        Ok(all)
    }

    /// A network by full name, full id or unique id prefix.
    pub fn find_network(&mut self, key: &str) -> Result<NetworkInfo> {
        let all = self.networks()?;
        if let Some(n) = all
            .iter()
            .find(|n| n.record.name == key || n.record.id == key)
        {
            return Ok(n.clone());
        }
        let found: Vec<&NetworkInfo> = all
            .iter()
            .filter(|n| !key.is_empty() && n.record.id.starts_with(key))
            .collect();
        match found.len() {
            0 => Err(EngineError::NoSuchNetwork(key.to_string())),
            1 => Ok(found[0].clone()),
            count => Err(EngineError::Ambiguous {
                key: key.into(),
                count,
                what: "network",
            }),
        }
    }

    /// `network rm`: the network's name.
    pub fn remove_network(&mut self, key: &str) -> Result<String> {
        let n = self.find_network(key)?;
        if PREDEFINED.iter().any(|(p, _)| *p == n.record.name) {
            return Err(EngineError::NetworkConfig(format!(
                "{} is a pre-defined network and cannot be removed",
                n.record.name
            )));
        }
        if !n.containers.is_empty() {
            return Err(EngineError::NetworkConfig(format!(
                "error while removing network: network {} id {} has active endpoints (remove its containers first)",
                n.record.name, n.record.id
            )));
        }
        self.state
            .write(|tx| state::remove_network(tx, &n.record.id))?;
        // Its bridge and DNS records go too (a holder that is gone took the bridge with it).
        let dir = self.paths.runtime.join("network");
        if let (Some(holder), Some(bridge)) = (Holder::find(&dir), &n.config.iface) {
            if let Err(err) = crate::network::remove_bridge(&holder, bridge) {
                tracing::warn!(%err, bridge, "cannot remove the network's bridge");
            }
        }
        if let Some(gateway) = n.dns_server() {
            let _ = std::fs::remove_file(crate::network::holder::records_path(&dir, gateway));
        }
        let attrs = BTreeMap::from([
            ("name".to_string(), n.record.name.clone()),
            ("type".to_string(), n.record.driver.clone()),
        ]);
        self.record_event("network", "destroy", &n.record.id, &attrs);
        Ok(n.record.name)
    }

    /// `network prune`: removes user-defined networks no container uses; their names.
    pub fn prune_networks(&mut self) -> Result<Vec<String>> {
        let unused: Vec<String> = self
            .networks()?
            .into_iter()
            .filter(|n| {
                !PREDEFINED.iter().any(|(p, _)| *p == n.record.name) && n.containers.is_empty()
            })
            .map(|n| n.record.id)
            .collect();
        unused.iter().map(|id| self.remove_network(id)).collect()
    }
}

impl Engine {
    /// The network `--network MODE` connects a container to, looked up by name or id; None
    /// for `none` and `host`, which need no connecting.
    pub(super) fn container_network(&mut self, mode: &str) -> Result<Option<NetworkInfo>> {
        if mode == "none" || mode == "host" || mode.starts_with("container:") {
            return Ok(None);
        }
        let n = self.find_network(mode)?;
        match n.record.driver.as_str() {
            "bridge" | "macvlan" => Ok(Some(n)),
            d => match self.network_plugin(d)? {
                Some(_) => Ok(Some(n)),
                None if crate::plugin::is_builtin_network_driver(d) => {
                    Err(EngineError::UnsupportedNetwork(mode.to_string()))
                }
                None => Err(EngineError::NetworkConfig(format!(
                    "network {} uses the network driver plugin {d:?}, which is not installed: install it again (burrow plugin install) or remove the network",
                    n.record.name
                ))),
            },
        }
    }

    /// Where the component of network driver `name` is, when it is an installed plugin; None
    /// for a built-in driver or no driver of that name. A disabled plugin, or a log driver
    /// of that name, is an error.
    pub(super) fn network_plugin(&self, name: &str) -> Result<Option<PathBuf>> {
        if crate::plugin::is_builtin_network_driver(name) {
            return Ok(None);
        }
        match self.installed_plugin(name)? {
            None => Ok(None),
            Some(p) if p.kind != super::plugins::PluginKind::Network => {
                Err(EngineError::NetworkConfig(format!(
                    "plugin {name:?} is a log driver, not a network driver"
                )))
            }
            Some(p) if !p.enabled => Err(EngineError::NetworkConfig(format!(
                "network driver plugin {name:?} is disabled (burrow plugin enable {name})"
            ))),
            Some(_) => Ok(Some(self.plugin_wasm(name))),
        }
    }

    /// What the drivers are told to connect container `c`: every network it holds an address
    /// on, the one of `--network` first (as eth0), then those of `network connect`.
    pub(super) fn endpoints(
        &mut self,
        c: &crate::state::ContainerRecord,
        config: &super::spec::ContainerConfig,
    ) -> Result<Vec<crate::network::Endpoint>> {
        if self.container_network(&config.network)?.is_none() {
            return Ok(vec![]);
        }
        let mut out = Vec::new();
        for row in self.state.container_endpoints(&c.id)? {
            let n = self.find_network(&row.network_id)?;
            let plugin = self.network_plugin(&n.record.driver)?;
            out.push(endpoint(c, config, &n, &row, plugin));
        }
        Ok(out)
    }
}

/// What network `n`'s driver is told to connect `c` with (one address, `row`'s).
fn endpoint(
    c: &crate::state::ContainerRecord,
    config: &super::spec::ContainerConfig,
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

impl Engine {
    /// Held while a container's networks change: by a start from reading them until the
    /// container runs, and by `network connect`/`disconnect`.
    pub(super) fn network_lock(&self, id: &str) -> Result<super::lock::FileLock> {
        let dir = self.paths.container_run_dir(id);
        std::fs::create_dir_all(&dir).map_err(|source| EngineError::Io {
            path: dir.clone(),
            source,
        })?;
        super::lock::FileLock::exclusive(&dir.join("network.lock"))
    }

    /// The user's network holder, started first if none runs (see [`Holder::ensure`]).
    pub(super) fn holder(&self) -> Result<Holder> {
        let way = self.file.rootless_network_cmd.unwrap_or_default();
        Holder::ensure(&self.paths.runtime.join("network"), &self.idmap, way)
            .map_err(|e| EngineError::NetworkConfig(crate::cli::render_chain(&e)))
    }

    /// The names of the running containers among `rows` that lost their networks with the
    /// network holder: they joined the user namespace of a holder that has since ended, and
    /// their veth pairs went with its network namespace. No new holder can reach them there;
    /// a restart connects them again.
    pub fn lost_networks(&mut self, rows: &[super::ContainerSummary]) -> Result<Vec<String>> {
        let live = Holder::find(&self.paths.runtime.join("network"))
            .and_then(|h| std::fs::read_link(h.userns()).ok());
        let mut lost = Vec::new();
        for s in rows {
            let c = &s.record;
            let Some(pid) = c.pid.filter(|p| {
                c.status == super::container::RUNNING
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

    /// A container's running pid, if it runs.
    pub(super) fn pid_if_running(
        &mut self,
        c: crate::state::ContainerRecord,
    ) -> Result<Option<i32>> {
        let c = self.repair(c)?;
        Ok(c.pid.filter(|p| {
            c.status == super::container::RUNNING
                && crate::runtime::proc::is_same_process(*p, c.pid_start)
        }))
    }

    /// `network connect [--alias A] [--ip IP] NETWORK CONTAINER`: gives the container an
    /// address on one more network, as its next free `ethN`; a running container gets the
    /// interface at once, a stopped one when it starts. Returns the container's name.
    pub fn connect_network(
        &mut self,
        network: &str,
        container: &str,
        opts: ConnectOptions,
    ) -> Result<String> {
        let c = self.find_container(container)?;
        let _span =
            tracing::info_span!("network connect", container = %&c.id[..12], network).entered();
        let config = self.container_config(&c)?;
        let mode = config.network.as_str();
        if mode == "host" || mode == "none" || mode.starts_with("container:") {
            return Err(EngineError::NetworkConfig(format!(
                "container {} uses --network {}: it cannot be connected to other networks (create it on a bridge network)",
                c.name,
                if mode.starts_with("container:") {
                    "container:…"
                } else {
                    mode
                }
            )));
        }
        let n = match self.container_network(network)? {
            Some(n) => n,
            None => {
                return Err(EngineError::NetworkConfig(format!(
                    "container cannot be disconnected from host network or connected to host network: {network} is not a bridge network"
                )));
            }
        };
        let _network = self.network_lock(&c.id)?;
        let rows = self.state.container_endpoints(&c.id)?;
        if rows.iter().any(|r| r.network_id == n.record.id) {
            return Err(EngineError::NetworkConfig(format!(
                "endpoint with name {} already exists in network {}",
                c.name, n.record.name
            )));
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
        if let Some(pid) = self.pid_if_running(c.clone())? {
            let row = state::EndpointRow {
                network_id: n.record.id.clone(),
                address: address.to_string(),
                ifname: Some(ifname),
                aliases: Some(opts.aliases.clone()),
            };
            let plugin = self.network_plugin(&n.record.driver)?;
            let e = endpoint(&c, &config, &n, &row, plugin);
            let connected = self.holder().and_then(|h| {
                crate::network::connect(&h, pid, self.plugin_cache_dir(), &[e])
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
    pub fn disconnect_network(&mut self, network: &str, container: &str) -> Result<String> {
        let c = self.find_container(container)?;
        let _span =
            tracing::info_span!("network disconnect", container = %&c.id[..12], network).entered();
        let n = self.find_network(network)?;
        let _network = self.network_lock(&c.id)?;
        let rows = self.state.container_endpoints(&c.id)?;
        let Some(row) = rows.into_iter().find(|r| r.network_id == n.record.id) else {
            return Err(EngineError::NetworkConfig(format!(
                "container {} is not connected to network {}",
                c.name, n.record.name
            )));
        };
        if let Some(pid) = self.pid_if_running(c.clone())? {
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
        let hostname = self.container_config(&c)?.hostname;
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

    fn network_event(&mut self, action: &str, n: &NetworkInfo, c: &crate::state::ContainerRecord) {
        let attrs = BTreeMap::from([
            ("container".to_string(), c.id.clone()),
            ("name".to_string(), n.record.name.clone()),
            ("type".to_string(), n.record.driver.clone()),
        ]);
        self.record_event("network", action, &n.record.id, &attrs);
    }
}

impl Engine {
    /// Rewrites the records the built-in DNS of network `id` answers (when it has one): for
    /// every container holding an address there, its name, aliases, short id and hostname.
    /// Best effort: a failure is logged, and the names are missing until the next rewrite.
    pub(super) fn refresh_dns(&mut self, id: &str) {
        if let Err(err) = self.write_dns_records(id) {
            tracing::warn!(%err, network = id, "cannot write the network's DNS records");
        }
    }

    fn write_dns_records(&mut self, id: &str) -> Result<()> {
        let n = self.find_network(id)?;
        let Some(gateway) = n.dns_server() else {
            return Ok(());
        };
        let mut text = String::new();
        for (cid, address) in &n.containers {
            let Some(c) = self.state.find_containers(cid)?.pop() else {
                continue;
            };
            let config = self.container_config(&c)?;
            // Aliases given to `network connect`, else those of --network-alias.
            let aliases = self
                .state
                .container_endpoints(cid)?
                .into_iter()
                .find(|r| r.network_id == n.record.id)
                .and_then(|r| r.aliases)
                .unwrap_or(config.dns.aliases);
            let short = &c.id[..12];
            let names = std::iter::once(c.name.as_str())
                .chain(aliases.iter().map(String::as_str))
                .chain([short, config.hostname.as_str()]);
            let mut seen = BTreeSet::new();
            for name in names.filter(|n| !n.is_empty()) {
                if seen.insert(name) {
                    text.push_str(&format!("{name} {address}\n"));
                }
            }
        }
        let path =
            crate::network::holder::records_path(&self.paths.runtime.join("network"), gateway);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| EngineError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        super::lock::write_replace_unsynced(&path, text.as_bytes())
    }
}

/// The flags that only make sense on some networks, checked against the container's:
/// `--add-host …:host-gateway`, `--ip`, `--mac-address`, `--network-alias`. Returns the
/// address `--ip` asked for.
pub(super) fn check_network_flags(
    config: &super::spec::ContainerConfig,
    network: Option<&NetworkInfo>,
) -> Result<Option<Ipv4Addr>> {
    let requested_ip = check_ip_and_aliases(config.ip.as_deref(), &config.dns.aliases, network)?;
    if config.dns.wants_host_gateway()
        && config.network != "host"
        && !network.is_some_and(NetworkInfo::host_loopback)
    {
        return Err(EngineError::NetworkConfig(format!(
            "--add-host ...:host-gateway needs --network host or a network made with -o allow_host_loopback=true: the host's loopback is closed to network {}",
            config.network
        )));
    }
    if config.mac_address.is_some() && network.is_none() {
        return Err(EngineError::NetworkConfig(
            "--mac-address needs a bridge network: give --network bridge or a network's name"
                .into(),
        ));
    }
    Ok(requested_ip)
}

/// `--ip` and `--alias`/`--network-alias`, at create and at `network connect`: the address
/// must parse, and both need a user-defined network (one with DNS).
fn check_ip_and_aliases(
    ip: Option<&str>,
    aliases: &[String],
    network: Option<&NetworkInfo>,
) -> Result<Option<Ipv4Addr>> {
    let requested = ip.map(str::parse::<Ipv4Addr>).transpose().map_err(|_| {
        EngineError::NetworkConfig(format!(
            "invalid IPv4 address for --ip: {}",
            ip.unwrap_or_default()
        ))
    })?;
    let user_defined = network.is_some_and(|n| n.record.name != "bridge");
    if requested.is_some() && !user_defined {
        return Err(EngineError::NetworkConfig(
            "user specified IP address is supported on user defined networks only (make one with network create)".into(),
        ));
    }
    if !aliases.is_empty() && !user_defined {
        return Err(EngineError::NetworkConfig(
            "network-scoped aliases are supported only for containers in user defined networks (make one with network create)".into(),
        ));
    }
    Ok(requested)
}

/// Hands container `container` the next free address of `n`'s first pool, or the one it
/// asked for (`--ip`), inside the write that records the container.
pub(super) fn allocate(
    tx: &rusqlite::Transaction<'_>,
    n: &NetworkInfo,
    container: &str,
    requested: Option<Ipv4Addr>,
) -> std::result::Result<Ipv4Addr, state::StateError> {
    let network = n.record.name.clone();
    let subnet = n
        .config
        .subnets
        .first()
        .ok_or_else(|| state::StateError::NoSubnet {
            network: network.clone(),
        })?;
    let pool = subnet.pool().map_err(state::StateError::Pool)?;
    let (taken, last) = state::allocation_state(tx, &n.record.id)?;
    let taken: BTreeSet<Ipv4Addr> = taken.iter().filter_map(|a| a.parse().ok()).collect();
    let last = last.and_then(|l| l.parse().ok());
    let in_pool = |source| state::StateError::AddressPool { network, source };
    let address = match requested {
        Some(ip) => pool.reserve(ip, &taken).map(|()| ip).map_err(in_pool)?,
        None => pool.allocate(&taken, last).map_err(in_pool)?,
    };
    state::add_allocation(
        tx,
        &n.record.id,
        &address.to_string(),
        container,
        requested.is_none(),
    )?;
    Ok(address)
}

/// The MTU a bridge network gets unless `-o com.docker.network.driver.mtu` says otherwise:
/// slirp4netns's (its tap's) rather than Ethernet's 1500, since every packet that leaves
/// goes through slirp, where the cost is per packet (podman's slirp4netns default too).
/// Measured with bench/network.sh: egress 101 MiB/s at 1500.
const BRIDGE_MTU: &str = "65520";
const MTU_OPTION: &str = "com.docker.network.driver.mtu";

/// The options as given, with the bridge's default MTU added when none is given.
fn with_default_mtu(driver: &str, options: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = options.to_vec();
    if driver == "bridge" && !options.iter().any(|(k, _)| k == MTU_OPTION) {
        out.push((MTU_OPTION.into(), BRIDGE_MTU.into()));
    }
    out
}

/// Docker's rule for network names.
fn check_name(name: &str) -> Result<()> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(EngineError::NetworkConfig(format!(
            "invalid network name {name:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
        )))
    }
}

/// What a driver may know of the host: whether burrow runs rootless, the host's interfaces
/// (/sys/class/net) and the subnets in use (other networks', and the host's routes).
fn host_facts(networks: &[Ipv4Net]) -> HostFacts {
    let mut used: Vec<String> = networks.iter().map(|n| n.to_string()).collect();
    used.extend(host_routes().iter().map(|n| n.to_string()));
    HostFacts {
        rootless: !nix::unistd::Uid::effective().is_root(),
        links: host_links(),
        used_subnets: used,
    }
}

fn host_links() -> Vec<LinkInfo> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return vec![];
    };
    let mut links: Vec<LinkInfo> = dir
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let read = |f: &str| std::fs::read_to_string(e.path().join(f)).unwrap_or_default();
            let kind = if e.path().join("bridge").exists() {
                "bridge"
            } else if name == "lo" {
                "loopback"
            } else {
                "ether"
            };
            LinkInfo {
                kind: kind.into(),
                mtu: read("mtu").trim().parse().unwrap_or(1500),
                up: read("operstate").trim() != "down",
                addrs: vec![],
                name,
            }
        })
        .collect();
    links.sort_by(|a, b| a.name.cmp(&b.name));
    links
}

/// The IPv4 destinations of the host's routes (/proc/net/route), default route excepted.
fn host_routes() -> Vec<Ipv4Net> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dst = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The kernel prints the network-order bytes as a native u32.
            let dst = Ipv4Addr::from(dst.to_ne_bytes());
            let prefix = mask.count_ones() as u8;
            (prefix > 0)
                .then(|| Ipv4Net::new(dst, prefix).ok())
                .flatten()
        })
        .collect()
}

impl NetworkInfo {
    /// Where the network's built-in DNS answers (its first gateway), if it has one.
    pub fn dns_server(&self) -> Option<Ipv4Addr> {
        if !self.config.dns {
            return None;
        }
        self.config
            .subnets
            .first()?
            .gateway
            .as_deref()?
            .parse()
            .ok()
    }

    /// Whether `-o allow_host_loopback=true` opened the host's loopback services to the
    /// network's containers (at 10.0.2.2, `host.containers.internal`).
    pub fn host_loopback(&self) -> bool {
        self.config
            .options
            .get("allow_host_loopback")
            .is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"))
    }

    /// The network as its driver sees it.
    pub fn wit(&self) -> Network {
        Network {
            id: self.record.id.clone(),
            name: self.record.name.clone(),
            driver: self.record.driver.clone(),
            iface: self.config.iface.clone(),
            subnets: self
                .config
                .subnets
                .iter()
                .map(|s| Subnet {
                    cidr: s.subnet.clone(),
                    gateway: s.gateway.clone(),
                })
                .collect(),
            ipv6: false,
            internal: self.config.internal,
            dns: self.config.dns,
            options: self
                .config
                .options
                .iter()
                .map(|(key, value)| crate::plugin::Kv {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
        }
    }

    /// `network inspect`: Docker's document.
    pub fn inspect(&self) -> serde_json::Value {
        let prefix = |s: &SubnetConfig| {
            s.subnet
                .split_once('/')
                .map_or(String::new(), |(_, p)| format!("/{p}"))
        };
        let ipam: Vec<serde_json::Value> = self
            .config
            .subnets
            .iter()
            .map(|s| {
                let mut c = serde_json::json!({ "Subnet": s.subnet });
                if let Some(r) = &s.ip_range {
                    c["IPRange"] = r.clone().into();
                }
                if let Some(g) = &s.gateway {
                    c["Gateway"] = g.clone().into();
                }
                c
            })
            .collect();
        let mask = self.config.subnets.first().map(prefix).unwrap_or_default();
        let containers: serde_json::Map<String, serde_json::Value> = self
            .containers
            .iter()
            .map(|(id, addr)| {
                (
                    id.clone(),
                    serde_json::json!({ "IPv4Address": format!("{addr}{mask}") }),
                )
            })
            .collect();
        serde_json::json!({
            "Name": self.record.name,
            "Id": self.record.id,
            "Created": super::inspect::rfc3339(Some(self.record.created)),
            "Scope": "local",
            "Driver": self.record.driver,
            "EnableIPv6": false,
            "IPAM": { "Driver": "default", "Options": {}, "Config": ipam },
            "Internal": self.config.internal,
            "Attachable": false,
            "Ingress": false,
            "ConfigFrom": { "Network": "" },
            "ConfigOnly": false,
            "Containers": containers,
            "Options": self.config.options,
            "Labels": self.config.labels,
        })
    }
}
