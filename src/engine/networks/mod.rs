//! Networks: `network create|ls|inspect|rm|prune`. The network driver (a WebAssembly plugin,
//! plugins/net-*) fills in a new network's defaults or refuses its options; the host checks the
//! address pools (src/network/ipam.rs) and records the network. The predefined `bridge`, `host`
//! and `none` networks are recorded on first use, as Docker has them from the start.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

mod attach;
mod checks;
mod dns;
mod refusal;

use super::config::{FileConfig, Paths};
use super::handles::Ids;
use super::plugins::Plugins;
use super::records::Records;
use super::{EngineError, Result, now_unix, random_id};
use crate::network::holder::Holder;
use crate::network::ipam::Pool;
use crate::plugin::{HostFacts, LinkInfo, Network, PluginError, Subnet};
use crate::state::{self, NetworkRecord, State};

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

pub use attach::ConnectOptions;
pub(super) use checks::{allocate, check_network_flags};
pub use refusal::NetworkRefusal;

/// Networks: created, listed, removed; containers connected to and from them.
#[derive(Clone, Copy)]
pub struct Networks<'e> {
    pub(super) paths: &'e Paths,
    pub(super) file: &'e FileConfig,
    pub(super) state: &'e State,
    pub(super) ids: &'e Ids,
    pub(super) records: Records<'e>,
    pub(super) plugins: Plugins<'e>,
}

impl Networks<'_> {
    /// `network create`: the new network's id.
    pub fn create(&self, req: NetworkCreate) -> Result<String> {
        let _span = tracing::info_span!("network_create", name = %req.name).entered();
        self.ensure_predefined_networks()?;
        check_name(&req.name)?;
        if self.state.networks()?.iter().any(|n| n.name == req.name) {
            return Err(state::StateError::NetworkExists(req.name.clone()).into());
        }
        if req.ip_ranges.len() > req.subnets.len() || req.gateways.len() > req.subnets.len() {
            return Err(NetworkRefusal::RangeWithoutSubnet.into());
        }
        let id = random_id()?;
        let record = self.new_network(&id, &req)?;
        let name = record.name.clone();
        let driver = record.driver.clone();
        self.state.write(|tx| state::insert_network(tx, &record))?;
        let attrs = BTreeMap::from([("name".to_string(), name), ("type".to_string(), driver)]);
        super::events::record(self.state, "network", "create", &id, &attrs);
        Ok(id)
    }

    /// Asks the driver for the network's defaults and checks its pools against the others.
    fn new_network(&self, id: &str, req: &NetworkCreate) -> Result<NetworkRecord> {
        let plugin = self.plugins.network_plugin(&req.driver)?;
        let driver = self
            .plugins
            .host()?
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
        let filled = driver.create(&asked, &facts).map_err(|e| -> EngineError {
            match e {
                PluginError::Config(msg) | PluginError::Unsupported { msg, .. } => {
                    NetworkRefusal::Driver {
                        driver: req.driver.clone(),
                        message: msg,
                    }
                    .into()
                }
                e => e.into(),
            }
        })?;
        if let Some(iface) = filled
            .iface
            .as_deref()
            .filter(|i| !crate::network::executor::host_ifname_ok(i))
        {
            return Err(NetworkRefusal::BadInterface {
                driver: req.driver.clone(),
                iface: iface.to_string(),
            }
            .into());
        }
        let mut subnets = Vec::new();
        for (i, s) in filled.subnets.iter().enumerate() {
            let sc = SubnetConfig {
                subnet: s.cidr.clone(),
                ip_range: req.ip_ranges.get(i).cloned(),
                gateway: s.gateway.clone(),
            };
            let pool = sc.pool().map_err(NetworkRefusal::Pool)?;
            if let Some(other) = used
                .iter()
                .find(|u| u.contains(&pool.subnet) || pool.subnet.contains(*u))
            {
                return Err(NetworkRefusal::Overlap {
                    subnet: pool.subnet.to_string(),
                    other: other.to_string(),
                }
                .into());
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
    fn ensure_predefined_networks(&self) -> Result<()> {
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
                let config = serde_json::from_str(&record.config).map_err(|source| {
                    NetworkRefusal::Malformed {
                        name: record.name.clone(),
                        source,
                    }
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
    pub fn list(&self) -> Result<Vec<NetworkInfo>> {
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
    pub fn find(&self, key: &str) -> Result<NetworkInfo> {
        let all = self.list()?;
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
    pub fn remove(&self, key: &str) -> Result<String> {
        let n = self.find(key)?;
        if PREDEFINED.iter().any(|(p, _)| *p == n.record.name) {
            return Err(NetworkRefusal::Predefined {
                name: n.record.name.clone(),
            }
            .into());
        }
        if !n.containers.is_empty() {
            return Err(NetworkRefusal::InUse {
                name: n.record.name.clone(),
                id: n.record.id.clone(),
            }
            .into());
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
        super::events::record(self.state, "network", "destroy", &n.record.id, &attrs);
        Ok(n.record.name)
    }

    /// `network prune`: removes user-defined networks no container uses; their names.
    pub fn prune(&self) -> Result<Vec<String>> {
        let unused: Vec<String> = self
            .list()?
            .into_iter()
            .filter(|n| {
                !PREDEFINED.iter().any(|(p, _)| *p == n.record.name) && n.containers.is_empty()
            })
            .map(|n| n.record.id)
            .collect();
        unused.iter().map(|id| self.remove(id)).collect()
    }
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
        Err(NetworkRefusal::BadName {
            name: name.to_string(),
        }
        .into())
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
            "Created": super::rfc3339(Some(self.record.created)),
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
