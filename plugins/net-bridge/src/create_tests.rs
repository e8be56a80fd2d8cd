use super::*;
use net_common::testing::{facts, kv, link, network, refusal, subnet};
use net_common::wit::Network;

/// The created network's bridge, subnets ("cidr gw") and DNS flag.
fn summary(n: &Network) -> (Option<String>, Vec<String>, bool) {
    let subnets = n
        .subnets
        .iter()
        .map(|s| format!("{} {}", s.cidr, s.gateway.as_deref().unwrap_or("-")))
        .collect();
    (n.iface.clone(), subnets, n.dns)
}

fn used(subnets: &[&str]) -> HostFacts {
    HostFacts {
        used_subnets: subnets.iter().map(|s| s.to_string()).collect(),
        ..facts()
    }
}

#[test]
fn default_network_is_burrow0_on_172_17_without_dns() {
    let n = create(network("bridge", "bridge"), &facts()).unwrap();
    assert_eq!(
        summary(&n),
        (
            Some("burrow0".into()),
            vec!["172.17.0.0/16 172.17.0.1".into()],
            false
        )
    );
}

#[test]
fn user_network_takes_the_next_free_pool_and_a_br_name() {
    let mut req = network("front", "bridge");
    req.options = vec![kv("com.docker.network.driver.mtu", "1400")];
    let n = create(req, &used(&["172.17.0.0/16"])).unwrap();
    assert_eq!(
        summary(&n),
        (
            Some("br-5f3b1c9e2a7d".into()),
            vec!["172.18.0.0/16 172.18.0.1".into()],
            true
        )
    );
    assert_eq!(n.options.len(), 1, "options are kept for setup");
}

#[test]
fn pools_skip_the_hosts_own_networks() {
    let mut f = used(&["172.17.0.0/16"]);
    f.links.push(link("wlan0", "device", &["172.18.3.4/24"]));
    let n = create(network("front", "bridge"), &f).unwrap();
    assert_eq!(summary(&n).1, ["172.19.0.0/16 172.19.0.1"]);

    let full = used(&["172.16.0.0/12", "192.168.0.0/16"]);
    assert_eq!(
        refusal(create(network("front", "bridge"), &full).unwrap_err()),
        (
            "invalid-config",
            "no free IPv4 subnet is left in the default pools 172.17.0.0/16-172.31.0.0/16 and 192.168.0.0/16: pass --subnet".into()
        )
    );
}

#[test]
fn given_subnet_gateway_and_bridge_name_are_kept() {
    let mut req = network("front", "bridge");
    req.subnets = vec![subnet("10.1.0.0/24", Some("10.1.0.254"))];
    req.options = vec![kv("com.docker.network.bridge.name", "docker1")];
    let n = create(req, &facts()).unwrap();
    assert_eq!(
        summary(&n),
        (
            Some("docker1".into()),
            vec!["10.1.0.0/24 10.1.0.254".into()],
            true
        )
    );
}

#[test]
fn ipv6_networks_get_an_ipv4_subnet_and_a_unique_local_one() {
    let mut req = network("dual", "bridge");
    req.ipv6 = true;
    let n = create(req.clone(), &facts()).unwrap();
    assert_eq!(
        summary(&n).1,
        [
            "172.17.0.0/16 172.17.0.1",
            "fd4e:c31a:a6e1::/64 fd4e:c31a:a6e1::1"
        ]
    );

    req.subnets = vec![subnet("fd00:db8::/64", None)];
    let n = create(req, &facts()).unwrap();
    assert_eq!(
        summary(&n).1,
        ["172.17.0.0/16 172.17.0.1", "fd00:db8::/64 fd00:db8::1"]
    );
}

#[test]
fn bad_networks_are_refused_at_create() {
    let refused = |req: Network, f: &HostFacts| refusal(create(req, f).unwrap_err());

    let mut req = network("front", "bridge");
    req.options = vec![
        kv("com.docker.network.bridge.enable_icc", "true"),
        kv("vlan", "10"),
    ];
    assert_eq!(
        refused(req, &facts()),
        (
            "invalid-config",
            "unknown option 'vlan' for bridge network driver".into()
        )
    );

    let mut req = network("front", "bridge");
    req.subnets = vec![subnet("172.17.0.0/16", None)];
    assert_eq!(
        refused(req, &used(&["172.17.0.0/16"])),
        (
            "invalid-config",
            "subnet 172.17.0.0/16 overlaps 172.17.0.0/16, which is already in use on this host: choose another --subnet".into()
        )
    );

    let mut req = network("front", "bridge");
    req.subnets = vec![subnet("10.0.2.0/24", None)];
    assert_eq!(
        refused(req, &facts()),
        (
            "invalid-config",
            "subnet 10.0.2.0/24 overlaps 10.0.2.0/24, which is already in use on this host: choose another --subnet".into()
        )
    );

    let mut req = network("front", "bridge");
    req.options = vec![kv("com.docker.network.bridge.name", "eth0")];
    assert_eq!(
        refused(req, &facts()),
        (
            "invalid-config",
            "interface eth0 already exists and is a device, not a bridge: choose another com.docker.network.bridge.name".into()
        )
    );

    let mut req = network("front", "bridge");
    req.ipv6 = true;
    req.options = vec![kv("com.docker.network.driver.mtu", "1000")];
    assert_eq!(
        refused(req, &facts()),
        (
            "invalid-config",
            "invalid value \"1000\" for option com.docker.network.driver.mtu: an IPv6 network needs at least 1280".into()
        )
    );

    let mut req = network("front", "bridge");
    req.subnets = vec![subnet("fd00:db8::/64", None)];
    assert_eq!(
        refused(req, &facts()),
        (
            "invalid-config",
            "subnet fd00:db8::/64 is IPv6: add --ipv6 to use it".into()
        )
    );
}

#[test]
fn an_existing_bridge_keeps_its_address() {
    let mut f = facts();
    f.links.push(link("burrow0", "bridge", &["172.17.0.1/16"]));
    let n = create(network("bridge", "bridge"), &f).unwrap();
    assert_eq!(
        summary(&n),
        (
            Some("burrow0".into()),
            vec!["172.17.0.0/16 172.17.0.1".into()],
            false
        )
    );
    // Docker's docker0 with a hand-set address: the address stays the gateway.
    f.links.last_mut().unwrap().addrs = vec!["10.200.0.9/24".into()];
    let n = create(network("bridge", "bridge"), &f).unwrap();
    assert_eq!(summary(&n).1, ["10.200.0.0/24 10.200.0.9"]);
    // Unless that address now clashes with something else the host uses.
    f.used_subnets = vec!["10.200.0.0/16".into()];
    let n = create(network("bridge", "bridge"), &f).unwrap();
    assert_eq!(summary(&n).1, ["172.17.0.0/16 172.17.0.1"]);
}
