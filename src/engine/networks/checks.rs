//! Checks of a container's network flags, and handing out addresses.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use super::NetworkInfo;
use super::NetworkRefusal;
use crate::engine::Result;
use crate::state;

/// The flags that only make sense on some networks, checked against the container's:
/// `--add-host …:host-gateway`, `--ip`, `--mac-address`, `--network-alias`. Returns the
/// address `--ip` asked for.
pub(in crate::engine) fn check_network_flags(
    config: &super::super::spec::ContainerConfig,
    network: Option<&NetworkInfo>,
) -> Result<Option<Ipv4Addr>> {
    let requested_ip = check_ip_and_aliases(config.ip.as_deref(), &config.dns.aliases, network)?;
    if config.dns.wants_host_gateway()
        && config.network != "host"
        && !network.is_some_and(NetworkInfo::host_loopback)
    {
        return Err(NetworkRefusal::HostGatewayClosed {
            network: config.network.clone(),
        }
        .into());
    }
    if config.mac_address.is_some() && network.is_none() {
        return Err(NetworkRefusal::MacNeedsNetwork.into());
    }
    Ok(requested_ip)
}

/// `--ip` and `--alias`/`--network-alias`, at create and at `network connect`: the address
/// must parse, and both need a user-defined network (one with DNS).
pub(super) fn check_ip_and_aliases(
    ip: Option<&str>,
    aliases: &[String],
    network: Option<&NetworkInfo>,
) -> Result<Option<Ipv4Addr>> {
    let requested =
        ip.map(str::parse::<Ipv4Addr>)
            .transpose()
            .map_err(|_| NetworkRefusal::BadIp {
                ip: ip.unwrap_or_default().to_string(),
            })?;
    let user_defined = network.is_some_and(|n| n.record.name != "bridge");
    if requested.is_some() && !user_defined {
        return Err(NetworkRefusal::IpNeedsUserNetwork.into());
    }
    if !aliases.is_empty() && !user_defined {
        return Err(NetworkRefusal::AliasNeedsUserNetwork.into());
    }
    Ok(requested)
}

/// Hands container `container` the next free address of `n`'s first pool, or the one it
/// asked for (`--ip`), inside the write that records the container.
pub(in crate::engine) fn allocate(
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
