//! The `-o` options of Docker's bridge driver that burrow carries out, checked at `network
//! create` and read again at `setup`.

use std::net::IpAddr;

use net_common::names::check_ifname;
use net_common::opts::{parse_bool, parse_ip, parse_mtu, unknown};
use net_common::unsupported;
use net_common::wit::{Error, Kv};

pub const NAME: &str = "com.docker.network.bridge.name";
pub const MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
pub const ICC: &str = "com.docker.network.bridge.enable_icc";
pub const HOST_BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";
pub const MTU: &str = "com.docker.network.driver.mtu";
/// burrow's own (podman's slirp4netns word): the host's loopback services are open to the
/// network's containers at 10.0.2.2, `host.containers.internal`. The host carries it out
/// (it concerns the holder's way out, not the plan).
pub const HOST_LOOPBACK: &str = "allow_host_loopback";

/// Options Docker's bridge driver knows that burrow's does not carry out: refused rather than
/// silently ignored.
const NOT_CARRIED_OUT: &[&str] = &[
    "com.docker.network.bridge.inhibit_ipv4",
    "com.docker.network.bridge.default_bridge",
    "com.docker.network.bridge.gateway_mode_ipv4",
    "com.docker.network.bridge.gateway_mode_ipv6",
    "com.docker.network.bridge.trusted_host_interfaces",
    "com.docker.network.container_iface_prefix",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeOpts {
    /// The bridge's interface name, instead of `br-` and the network id.
    pub name: Option<String>,
    /// NAT for traffic leaving the subnet (default on).
    pub masquerade: bool,
    pub mtu: Option<u32>,
    /// The host address `-p` binds when it names none (default: all).
    pub host_ip: Option<IpAddr>,
}

impl BridgeOpts {
    /// Reads the options; a repeated key takes its last value, as Docker's `-o` map does.
    pub fn parse(opts: &[Kv]) -> Result<Self, Error> {
        let mut out = BridgeOpts {
            name: None,
            masquerade: true,
            mtu: None,
            host_ip: None,
        };
        for Kv { key, value } in opts {
            match key.as_str() {
                NAME => {
                    check_ifname("bridge name", value)?;
                    out.name = Some(value.clone());
                }
                MASQUERADE => out.masquerade = parse_bool(key, value)?,
                ICC => {
                    if !parse_bool(key, value)? {
                        return Err(unsupported(format!(
                            "{ICC}=false is not supported: containers on a burrow bridge network always reach each other"
                        )));
                    }
                }
                HOST_BINDING => out.host_ip = Some(parse_ip(key, value)?),
                HOST_LOOPBACK => {
                    parse_bool(key, value)?;
                }
                MTU => out.mtu = Some(parse_mtu(key, value)?),
                k if NOT_CARRIED_OUT.contains(&k) => {
                    return Err(unsupported(format!(
                        "option {k} is not supported by burrow's bridge network driver"
                    )));
                }
                k => return Err(unknown(k, "bridge")),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use net_common::message;

    fn kv(key: &str, value: &str) -> Kv {
        Kv {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn dockers_options_are_read() {
        let got = BridgeOpts::parse(&[
            kv(NAME, "docker1"),
            kv(MASQUERADE, "false"),
            kv(ICC, "true"),
            kv(HOST_BINDING, "127.0.0.1"),
            kv(MTU, "1400"),
            kv(MTU, "1450"),
        ])
        .unwrap();
        assert_eq!(
            got,
            BridgeOpts {
                name: Some("docker1".into()),
                masquerade: false,
                mtu: Some(1450),
                host_ip: Some("127.0.0.1".parse().unwrap()),
            }
        );
        let defaults = BridgeOpts::parse(&[]).unwrap();
        assert!(defaults.masquerade);
        assert_eq!(defaults.name, None);
    }

    #[test]
    fn unknown_malformed_and_unsupported_options_are_refused() {
        let refused = |k: &str, v: &str| {
            let e = BridgeOpts::parse(&[kv(k, v)]).unwrap_err();
            let kind = match e {
                Error::InvalidConfig(_) => "invalid",
                Error::Unsupported(_) => "unsupported",
                _ => "other",
            };
            (kind, message(&e).to_string())
        };
        assert_eq!(
            refused("com.docker.network.bridge.nam", "x"),
            (
                "invalid",
                "unknown option 'com.docker.network.bridge.nam' for bridge network driver".into()
            )
        );
        assert_eq!(
            refused("parent", "eth0"),
            (
                "invalid",
                "unknown option 'parent' for bridge network driver".into()
            )
        );
        assert_eq!(
            refused(MASQUERADE, "maybe"),
            (
                "invalid",
                "invalid value \"maybe\" for option com.docker.network.bridge.enable_ip_masquerade: expected true or false".into()
            )
        );
        assert_eq!(
            refused(NAME, "a-very-long-bridge"),
            (
                "invalid",
                "bridge name \"a-very-long-bridge\" is too long: interface names have at most 15 characters".into()
            )
        );
        assert_eq!(
            refused(HOST_BINDING, "0.0.0"),
            (
                "invalid",
                "invalid value \"0.0.0\" for option com.docker.network.bridge.host_binding_ipv4: expected an IP address".into()
            )
        );
        assert_eq!(
            refused(MTU, "9"),
            (
                "invalid",
                "invalid value \"9\" for option com.docker.network.driver.mtu: expected a number from 68 to 65535".into()
            )
        );
        assert_eq!(
            refused(ICC, "false"),
            (
                "unsupported",
                "com.docker.network.bridge.enable_icc=false is not supported: containers on a burrow bridge network always reach each other".into()
            )
        );
        assert_eq!(
            refused("com.docker.network.bridge.inhibit_ipv4", "true"),
            (
                "unsupported",
                "option com.docker.network.bridge.inhibit_ipv4 is not supported by burrow's bridge network driver".into()
            )
        );
    }
}
