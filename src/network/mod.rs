//! The host side of networking (../shared/DESIGN.md, `network/`): address management, the
//! executor that checks and applies driver plans over rtnetlink, and the per-user network
//! holder whose namespaces hold the bridges.

mod diagnostics;
pub mod dns;
pub mod egress;
mod error;
pub mod executor;
pub mod holder;
pub mod ipam;
pub mod ports;
pub mod tcp_relay;

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::plugin::{Attach, HostFacts, PluginHost};
use crate::runtime::RuntimeError;
pub use error::NetworkError;
use holder::Holder;

/// One network a container joins: the driver's name and what it is told about the container.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub driver: String,
    /// The component of an installed network driver plugin (None: a built-in driver).
    pub plugin: Option<PathBuf>,
    pub attach: Attach,
    /// Host interfaces the plan may make beyond `veth…`/`br-…`/`burrow0` (`-o …bridge.name`).
    pub allowed: executor::Allowed,
    /// The network opens the host's loopback to its containers (`allow_host_loopback`).
    pub host_loopback: bool,
}

impl Endpoint {
    /// Whether the container's end is wired on the network holder's side; endpoints that hang
    /// off a host interface (macvlan: `allowed.parents`) are wired from burrow's own.
    pub fn in_holder(&self) -> bool {
        self.allowed.parents.is_empty()
    }
}

/// Connects the network namespace of process `pid` (a container in the holder's user
/// namespace) to each endpoint's network: in a child that joined the holder's user
/// namespace, each driver computes its plan and the executor carries it out between the
/// holder's network namespace and the container's. The container's end of each veth goes
/// with its namespace, so nothing needs undoing when the container exits.
///
/// Endpoints that hang off a host interface (macvlan: `allowed.parents`) are connected from
/// burrow's own namespaces instead, where that interface is: only root may, and only root
/// gets there (the drivers refuse such networks rootless).
pub fn connect(
    holder: &Holder,
    pid: i32,
    plugin_cache: PathBuf,
    endpoints: &[Endpoint],
) -> Result<(), RuntimeError> {
    let container_ns = netns_of(pid)?;
    let (on_host, in_holder_ns): (Vec<Endpoint>, Vec<Endpoint>) =
        endpoints.iter().cloned().partition(|e| !e.in_holder());
    if !in_holder_ns.is_empty() {
        let (host_ns, container_ns, cache) =
            (holder.netns(), container_ns.clone(), plugin_cache.clone());
        in_holder(holder, move || {
            let ns = open(&host_ns)?;
            executor::in_netns(ns.as_fd(), || {
                holder::bridges_skip_netfilter();
                Ok(())
            })
            .map_err(NetworkError::EnterHolder)?;
            apply_endpoints(&host_ns, &container_ns, cache, &in_holder_ns, vec![])
        })?;
    }
    if !on_host.is_empty() {
        let host_ns = PathBuf::from(format!("/proc/{}/ns/net", std::process::id()));
        network_job(None, move || {
            let parents = on_host.iter().flat_map(|e| e.allowed.parents.clone());
            let links = links_of(&host_ns, parents.collect())?;
            apply_endpoints(&host_ns, &container_ns, plugin_cache, &on_host, links)
        })?;
    }
    Ok(())
}

/// The network namespace file of the container whose pid 1 (or first process) is `pid`.
fn netns_of(pid: i32) -> Result<PathBuf, RuntimeError> {
    let anchor = crate::runtime::namespace_anchor(pid)?;
    Ok(PathBuf::from(format!("/proc/{anchor}/ns/net")))
}

/// Those of `names` that are interfaces in the network namespace at `ns` (what a macvlan
/// driver checks its parent against).
fn links_of(ns: &Path, names: Vec<String>) -> Result<Vec<crate::plugin::LinkInfo>, NetworkError> {
    let ns = open(ns)?;
    let mut links = Vec::new();
    for name in names {
        let exists = match executor::in_netns(ns.as_fd(), || executor::link_exists(&name)) {
            Ok(exists) => exists,
            Err(source) => return Err(NetworkError::LookForInterface { name, source }),
        };
        if exists {
            links.push(crate::plugin::LinkInfo {
                kind: "ether".into(),
                mtu: 1500,
                up: true,
                addrs: vec![],
                name,
            });
        }
    }
    Ok(links)
}

/// Each endpoint's driver computes its plan for the container; the executor carries it out
/// between the network namespaces at `host_ns` and `container_ns` (from a job with
/// privilege over both). The drivers are told of the host side's interfaces `links`.
fn apply_endpoints(
    host_ns: &Path,
    container_ns: &Path,
    plugin_cache: PathBuf,
    endpoints: &[Endpoint],
    links: Vec<crate::plugin::LinkInfo>,
) -> Result<(), NetworkError> {
    let facts = HostFacts {
        rootless: !nix::unistd::Uid::effective().is_root() || in_child_userns(),
        links,
        used_subnets: vec![],
    };
    let host = open(host_ns)?;
    let container = open(container_ns)?;
    let plugins = PluginHost::new(plugin_cache).map_err(NetworkError::Plugin)?;
    for e in endpoints {
        let driver = plugins
            .network_driver_at(&e.driver, e.plugin.as_deref())
            .map_err(NetworkError::Plugin)?;
        let plan = driver
            .setup(&e.attach, &facts)
            .map_err(NetworkError::DriverSetup)?;
        executor::apply(
            &e.driver,
            &plan,
            &e.allowed,
            host.as_fd(),
            container.as_fd(),
        )
        .map_err(NetworkError::Plan)?;
        if e.host_loopback {
            let bridges: Vec<String> = plan
                .ops
                .iter()
                .filter_map(|op| match op {
                    crate::plugin::Op::EnsureLink(crate::plugin::Link::Bridge(b)) => {
                        Some(b.name.clone())
                    }
                    _ => None,
                })
                .collect();
            let opened = executor::in_netns(host.as_fd(), || {
                bridges
                    .iter()
                    .try_for_each(|b| holder::open_host_loopback(b))
            });
            if let Err(source) = opened {
                return Err(NetworkError::HostLoopback { bridges, source });
            }
        }
        let servers: Vec<Ipv4Addr> = plan
            .dns_servers
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        if !servers.is_empty() {
            executor::in_netns(host.as_fd(), || {
                servers.iter().for_each(|gw| holder::wait_for_dns(*gw));
                Ok(())
            })
            .map_err(NetworkError::EnterHolder)?;
        }
    }
    Ok(())
}

/// Takes interface `ifname` out of the network namespace of process `pid` (a container in the
/// holder's user namespace): its veth pair goes, and with it the container's place on that
/// network's bridge.
pub fn disconnect(holder: &Holder, pid: i32, ifname: &str) -> Result<(), RuntimeError> {
    let container_ns = netns_of(pid)?;
    delete_link_in(holder, container_ns, ifname, "the container's")
}

/// Removes a network's bridge from the holder's namespace (`network rm`), with whatever is
/// still attached to it.
pub fn remove_bridge(holder: &Holder, bridge: &str) -> Result<(), RuntimeError> {
    delete_link_in(holder, holder.netns(), bridge, "the bridge")
}

/// Deletes the link `name` in the network namespace at `ns_path`, from a holder job.
fn delete_link_in(
    holder: &Holder,
    ns_path: PathBuf,
    name: &str,
    what: &'static str,
) -> Result<(), RuntimeError> {
    let name = name.to_string();
    in_holder(holder, move || {
        let ns = open(&ns_path)?;
        executor::delete_link(ns.as_fd(), &name).map_err(|source| NetworkError::RemoveLink {
            what,
            name,
            source,
        })
    })
}

/// Opens a namespace file.
fn open(path: &Path) -> Result<std::fs::File, NetworkError> {
    std::fs::File::open(path).map_err(|source| NetworkError::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// Runs `job` in the holder's user namespace; its failure is a network error.
fn in_holder(
    holder: &Holder,
    job: impl FnOnce() -> Result<(), NetworkError>,
) -> Result<(), RuntimeError> {
    network_job(Some(&holder.userns()), job)
}

/// Runs `job` in a forked child, in the user namespace `userns` if given (else burrow's
/// own); its failure is a network error.
fn network_job(
    userns: Option<&Path>,
    job: impl FnOnce() -> Result<(), NetworkError>,
) -> Result<(), RuntimeError> {
    crate::runtime::in_forked_job(userns, job).map_err(job_failed)
}

/// A failed network job is a network error; the job machinery's own failures stay theirs.
fn job_failed(e: RuntimeError) -> RuntimeError {
    match e {
        RuntimeError::Job(job) => RuntimeError::Network(job),
        e => e,
    }
}

/// Whether this process runs in a user namespace other than the initial one (it does once it
/// joined the holder's, where it is uid 0 yet holds no privilege over the host).
fn in_child_userns() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(true)
}
