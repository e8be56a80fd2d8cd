//! What the `host`, `none` and `container` drivers share: their networks have no subnet, no
//! option and nothing per container to configure, so the settings that only make sense on a
//! network burrow builds are refused with Docker's messages.

use crate::invalid;
use crate::opts::refuse_any;
use crate::wit::{Attach, Error, Network};

/// `network create` for a driver whose network is the host's or nobody's.
pub fn create(mut n: Network, driver: &str) -> Result<Network, Error> {
    refuse_any(&n.options, driver)?;
    let flag = if !n.subnets.is_empty() {
        Some("--subnet")
    } else if n.ipv6 {
        Some("--ipv6")
    } else if n.internal {
        Some("--internal")
    } else {
        None
    };
    if let Some(flag) = flag {
        return Err(invalid(format!(
            "{driver} network driver does not take {flag}"
        )));
    }
    n.iface = None;
    n.dns = false;
    Ok(n)
}

/// Refuses `--ip`, `--mac-address` and `--net-alias`, as Docker does outside user-defined
/// networks.
pub fn refuse_endpoint(a: &Attach) -> Result<(), Error> {
    if !a.ips.is_empty() {
        return Err(invalid(
            "user specified IP address is supported on user defined networks only",
        ));
    }
    if a.mac.is_some() {
        return Err(invalid(
            "conflicting options: mac-address and the network mode",
        ));
    }
    if !a.aliases.is_empty() {
        return Err(invalid(
            "network-scoped alias is supported only for containers in user defined networks",
        ));
    }
    Ok(())
}
