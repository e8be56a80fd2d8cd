//! What the engine refuses about networks and a container's network flags, in Docker's
//! words where Docker has them. Each names what it is about (network, container, flag value),
//! so the CLI can say it in one line and the REST API can answer with Docker's status.

use crate::network::holder::HolderError;
use crate::network::ipam::IpamError;
use crate::network::ports::{PortSpecError, PublishError};

#[derive(Debug, thiserror::Error)]
pub enum NetworkRefusal {
    // --- flags of `run`/`create` ---------------------------------------------------------
    #[error(
        "--add-host ...:host-gateway needs --network host or a network made with -o allow_host_loopback=true: the host's loopback is closed to network {network}"
    )]
    HostGatewayClosed { network: String },
    #[error("invalid argument {entry:?} for \"--add-host\" flag: use HOST:IP, e.g. db:10.0.0.5")]
    BadAddHost { entry: String },
    #[error(
        "--add-host {entry}: host-gateway needs a network (--network host, or one made with -o allow_host_loopback=true)"
    )]
    HostGatewayNeedsNetwork { entry: String },
    #[error("invalid IP address in add-host: {ip:?}")]
    BadAddHostIp { ip: String },
    #[error("invalid argument {server:?} for \"--dns\" flag: {server} is not an ip address")]
    BadDns { server: String },
    #[error("--mac-address needs a bridge network: give --network bridge or a network's name")]
    MacNeedsNetwork,
    #[error("invalid MAC address {mac}: a multicast address cannot name an interface")]
    MulticastMac { mac: String },
    #[error("invalid MAC address {mac:?}: use six hex pairs such as 02:42:ac:11:00:02")]
    BadMac { mac: String },
    #[error("invalid IPv4 address for --ip: {ip}")]
    BadIp { ip: String },
    #[error(
        "user specified IP address is supported on user defined networks only (make one with network create)"
    )]
    IpNeedsUserNetwork,
    #[error(
        "network-scoped aliases are supported only for containers in user defined networks (make one with network create)"
    )]
    AliasNeedsUserNetwork,
    #[error("--network container: needs a container's name or id (container:NAME)")]
    ContainerModeNeedsName,
    #[error("--network needs a value: none, host or a network's name")]
    NetworkNeedsValue,
    #[error(
        "conflicting options: {what} and the network mode (container:NAME shares the other container's network)"
    )]
    ContainerModeConflict { what: &'static str },
    #[error("container {container} uses the host's network: give --network host instead")]
    SharesHostNetwork { container: String },
    #[error("cannot join network of a non running container: {container} (start it first)")]
    JoinStopped { container: String },
    #[error("--link needs a bridge network: give --network bridge or a network's name")]
    LinkNeedsNetwork,
    #[error("cannot link to {container}: it is not on network {network}")]
    LinkNotOnNetwork { container: String, network: String },
    #[error(transparent)]
    BadPort(#[from] PortSpecError),
    #[error(
        "published ports need a network to forward to: give --network bridge or a network's name"
    )]
    PortsNeedNetwork,
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("no public port '{port}' published for {container}")]
    NoPublicPort { port: String, container: String },

    // --- networks ------------------------------------------------------------------------
    #[error(
        "invalid network name {name:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
    )]
    BadName { name: String },
    #[error("every --ip-range or --gateway needs a --subnet: give as many --subnet flags")]
    RangeWithoutSubnet,
    /// The network driver's own refusal (a plugin's message).
    #[error("{message}")]
    Driver { driver: String, message: String },
    #[error(
        "network driver {driver:?} chose the interface name {iface:?}, which burrow refuses (the network holder's own, or not a valid name)"
    )]
    BadInterface { driver: String, iface: String },
    #[error(transparent)]
    Pool(#[from] IpamError),
    #[error(
        "Pool overlaps with other one on this address space: {subnet} overlaps {other}; choose another --subnet"
    )]
    Overlap { subnet: String, other: String },
    #[error(
        "network {name} has a malformed record ({source}); remove it with `burrow network rm {name}`"
    )]
    Malformed {
        name: String,
        source: serde_json::Error,
    },
    #[error("{name} is a pre-defined network and cannot be removed")]
    Predefined { name: String },
    #[error(
        "error while removing network: network {name} id {id} has active endpoints (remove its containers first)"
    )]
    InUse { name: String, id: String },
    #[error(
        "network {network} uses the network driver plugin {driver:?}, which is not installed: install it again (burrow plugin install) or remove the network"
    )]
    PluginMissing { network: String, driver: String },
    #[error("plugin {name:?} is a log driver, not a network driver")]
    NotANetworkDriver { name: String },
    #[error("network driver plugin {name:?} is disabled (burrow plugin enable {name})")]
    PluginDisabled { name: String },
    #[error(transparent)]
    Holder(#[from] HolderError),

    // --- connect / disconnect ------------------------------------------------------------
    #[error(
        "container {container} uses --network {mode}: it cannot be connected to other networks (create it on a bridge network)"
    )]
    NotConnectable { container: String, mode: String },
    #[error(
        "container cannot be disconnected from host network or connected to host network: {network} is not a bridge network"
    )]
    NotBridge { network: String },
    #[error("endpoint with name {container} already exists in network {network}")]
    EndpointExists { container: String, network: String },
    #[error("container {container} is not connected to network {network}")]
    NotConnected { container: String, network: String },
}
