use super::*;
use crate::create::create;
use net_common::plan::{render_iface, render_ops};
use net_common::testing::{attach, facts, kv, network, port, refusal, subnet};
use net_common::wit::{HostFacts, Network};

/// The host end of the fixture container's veth on the fixture network.
const VETH: &str = "vethb8933bc655f";

fn created(n: Network, used: &[&str]) -> Network {
    let f = HostFacts {
        used_subnets: used.iter().map(|s| s.to_string()).collect(),
        ..facts()
    };
    create(n, &f).unwrap()
}

/// `network create front`, with the default network already on 172.17.0.0/16.
fn front() -> Network {
    created(network("front", "bridge"), &["172.17.0.0/16"])
}

fn lines(expected: &str) -> Vec<String> {
    expected
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.replace("vethVETH", VETH))
        .collect()
}

#[test]
fn container_on_a_user_network_gets_routes_nat_ports_and_dns() {
    let mut a = attach(front(), &["172.18.0.2"]);
    a.aliases = vec!["api".into()];
    a.ports = vec![
        port(None, 8080, 80, 1, Proto::Tcp),
        port(Some("127.0.0.1"), 5353, 53, 1, Proto::Udp),
        port(None, 9000, 9000, 2, Proto::Tcp),
    ];
    let plan = setup(&a).unwrap();
    assert_eq!(
        render_ops(&plan),
        lines(
            "
            link bridge br-5f3b1c9e2a7d
            addr host br-5f3b1c9e2a7d 172.18.0.1/16
            up host br-5f3b1c9e2a7d
            sysctl host net.ipv4.ip_forward=1
            link veth vethVETH peer eth0 master br-5f3b1c9e2a7d mac 02:42:ac:12:00:02
            up host vethVETH
            addr container eth0 172.18.0.2/16
            up container eth0
            up container lo
            route container 0.0.0.0/0 via 172.18.0.1 dev eth0
            masquerade 172.18.0.0/16
            forward tcp *:8080 -> 172.18.0.2:80
            forward udp 127.0.0.1:5353 -> 172.18.0.2:53
            forward tcp *:9000-9001 -> 172.18.0.2:9000-9001
            dns web 172.18.0.2
            dns api 172.18.0.2
            dns d41d8cd98f00 172.18.0.2
            "
        )
    );
    let ifaces: Vec<String> = plan.ifaces.iter().map(render_iface).collect();
    assert_eq!(
        ifaces,
        ["eth0 02:42:ac:12:00:02 172.18.0.2/16 via 172.18.0.1"]
    );
    // A second network (`network connect`, eth1): its default route stands behind eth0's.
    let mut b = attach(front(), &["172.18.0.2"]);
    b.ifname = "eth1".into();
    let second = setup(&b).unwrap();
    assert!(
        render_ops(&second)
            .contains(&"route container 0.0.0.0/0 via 172.18.0.1 dev eth1 metric 1".to_string()),
        "{:?}",
        render_ops(&second)
    );
    assert_eq!(plan.dns_servers, ["172.18.0.1"]);
    assert!(plan.search.is_empty());

    let down = teardown(&a).unwrap();
    assert_eq!(
        render_ops(&down),
        lines(
            "
            dns web 172.18.0.2
            dns api 172.18.0.2
            dns d41d8cd98f00 172.18.0.2
            forward tcp *:8080 -> 172.18.0.2:80
            forward udp 127.0.0.1:5353 -> 172.18.0.2:53
            forward tcp *:9000-9001 -> 172.18.0.2:9000-9001
            link veth vethVETH peer eth0 master br-5f3b1c9e2a7d mac 02:42:ac:12:00:02
            "
        )
    );
    assert!(down.ifaces.is_empty() && down.dns_servers.is_empty());
}

#[test]
fn internal_network_has_no_way_out() {
    let mut req = network("back", "bridge");
    req.internal = true;
    req.subnets = vec![subnet("10.10.0.0/24", None)];
    let mut a = attach(created(req, &[]), &["10.10.0.5"]);
    a.ports = vec![port(None, 8080, 80, 1, Proto::Tcp)];
    let plan = setup(&a).unwrap();
    assert_eq!(
        render_ops(&plan),
        lines(
            "
            link bridge br-5f3b1c9e2a7d
            addr host br-5f3b1c9e2a7d 10.10.0.1/24
            up host br-5f3b1c9e2a7d
            link veth vethVETH peer eth0 master br-5f3b1c9e2a7d mac 02:42:0a:0a:00:05
            up host vethVETH
            addr container eth0 10.10.0.5/24
            up container eth0
            up container lo
            dns web 10.10.0.5
            dns d41d8cd98f00 10.10.0.5
            "
        )
    );
    let ifaces: Vec<String> = plan.ifaces.iter().map(render_iface).collect();
    assert_eq!(ifaces, ["eth0 02:42:0a:0a:00:05 10.10.0.5/24"]);
    // The built-in DNS is on the bridge, which an internal network still reaches.
    assert_eq!(plan.dns_servers, ["10.10.0.1"]);

    assert_eq!(
        render_ops(&teardown(&a).unwrap()),
        lines(
            "
            dns web 10.10.0.5
            dns d41d8cd98f00 10.10.0.5
            link veth vethVETH peer eth0 master br-5f3b1c9e2a7d mac 02:42:0a:0a:00:05
            "
        )
    );
}

#[test]
fn default_network_with_options_and_a_requested_mac() {
    let mut req = network("bridge", "bridge");
    req.options = vec![
        kv("com.docker.network.driver.mtu", "1400"),
        kv("com.docker.network.bridge.host_binding_ipv4", "127.0.0.1"),
    ];
    let mut a = attach(created(req, &[]), &["172.17.0.2"]);
    a.mac = Some("92:D0:C6:0A:29:33".into());
    a.hostname = Some("box".into());
    a.ports = vec![port(None, 8080, 80, 1, Proto::Tcp)];
    let plan = setup(&a).unwrap();
    assert_eq!(
        render_ops(&plan),
        lines(
            "
            link bridge burrow0 mtu 1400
            addr host burrow0 172.17.0.1/16
            up host burrow0
            sysctl host net.ipv4.ip_forward=1
            link veth vethVETH peer eth0 master burrow0 mtu 1400 mac 92:d0:c6:0a:29:33
            up host vethVETH
            addr container eth0 172.17.0.2/16
            up container eth0
            up container lo
            route container 0.0.0.0/0 via 172.17.0.1 dev eth0
            masquerade 172.17.0.0/16
            forward tcp 127.0.0.1:8080 -> 172.17.0.2:80
            "
        )
    );
    // No built-in DNS on the default network: the container uses the host's resolvers.
    assert!(plan.dns_servers.is_empty());
    assert_eq!(
        render_ops(&teardown(&a).unwrap()),
        lines(
            "
            forward tcp 127.0.0.1:8080 -> 172.17.0.2:80
            link veth vethVETH peer eth0 master burrow0 mtu 1400 mac 92:d0:c6:0a:29:33
            "
        )
    );
}

#[test]
fn dual_stack_without_masquerade() {
    let mut req = network("dual", "bridge");
    req.ipv6 = true;
    req.subnets = vec![subnet("172.30.0.0/24", None), subnet("fd00:db8::/64", None)];
    req.options = vec![kv(
        "com.docker.network.bridge.enable_ip_masquerade",
        "false",
    )];
    let mut a = attach(created(req, &[]), &["172.30.0.2", "fd00:db8::2"]);
    a.hostname = Some("web".into());
    a.ports = vec![port(Some("::1"), 8443, 443, 1, Proto::Tcp)];
    let plan = setup(&a).unwrap();
    assert_eq!(
        render_ops(&plan),
        lines(
            "
            link bridge br-5f3b1c9e2a7d
            addr host br-5f3b1c9e2a7d 172.30.0.1/24
            addr host br-5f3b1c9e2a7d fd00:db8::1/64
            up host br-5f3b1c9e2a7d
            sysctl host net.ipv4.ip_forward=1
            sysctl host net.ipv6.conf.all.forwarding=1
            link veth vethVETH peer eth0 master br-5f3b1c9e2a7d mac 02:42:ac:1e:00:02
            up host vethVETH
            addr container eth0 172.30.0.2/24
            addr container eth0 fd00:db8::2/64
            up container eth0
            up container lo
            route container 0.0.0.0/0 via 172.30.0.1 dev eth0
            route container ::/0 via fd00:db8::1 dev eth0
            forward tcp [::1]:8443 -> [fd00:db8::2]:443
            dns web 172.30.0.2 fd00:db8::2
            dns d41d8cd98f00 172.30.0.2 fd00:db8::2
            "
        )
    );
    let ifaces: Vec<String> = plan.ifaces.iter().map(render_iface).collect();
    assert_eq!(
        ifaces,
        ["eth0 02:42:ac:1e:00:02 172.30.0.2/24 fd00:db8::2/64 via 172.30.0.1"]
    );
}

#[test]
fn bad_requests_are_refused_at_setup() {
    let refused = |a: &Attach| match setup(a) {
        Ok(plan) => panic!("accepted: {:?}", render_ops(&plan)),
        Err(e) => refusal(e),
    };

    assert_eq!(
        refused(&attach(front(), &[])),
        (
            "internal",
            "no address was allocated for container web on network front".into()
        )
    );
    assert_eq!(
        refused(&attach(network("front", "bridge"), &["172.18.0.2"])),
        (
            "internal",
            "network front has no bridge name: it did not go through network create".into()
        )
    );
    let mut a = attach(front(), &["172.18.0.2"]);
    a.ifname = "eth0-of-the-webs".into();
    assert_eq!(
        refused(&a),
        (
            "invalid-config",
            "interface name \"eth0-of-the-webs\" is too long: interface names have at most 15 characters".into()
        )
    );
    let mut a = attach(front(), &["172.18.0.2"]);
    a.mac = Some("01:00:5e:00:00:01".into());
    assert_eq!(
        refused(&a),
        (
            "invalid-config",
            "invalid MAC address 01:00:5e:00:00:01: it is a multicast address".into()
        )
    );

    let mut a = attach(created(network("bridge", "bridge"), &[]), &["172.17.0.2"]);
    a.aliases = vec!["api".into()];
    assert_eq!(
        refused(&a),
        (
            "invalid-config",
            "network-scoped alias is supported only for containers in user defined networks".into()
        )
    );

    let with_port = |p| {
        let mut a = attach(front(), &["172.18.0.2"]);
        a.ports = vec![p];
        refused(&a)
    };
    assert_eq!(
        with_port(port(Some("::1"), 8443, 443, 1, Proto::Tcp)),
        (
            "invalid-config",
            "cannot publish [::1]:8443:443/tcp: container web has no IPv6 address on network front"
                .into()
        )
    );
    assert_eq!(
        with_port(port(None, 65535, 80, 2, Proto::Udp)),
        (
            "invalid-config",
            "invalid published port 65535-65536:80-81/udp: the range goes past 65535".into()
        )
    );
    assert_eq!(
        with_port(port(None, 8080, 0, 1, Proto::Tcp)),
        (
            "invalid-config",
            "invalid published port 8080:0/tcp: the container port cannot be 0".into()
        )
    );
    assert_eq!(
        with_port(port(Some("localhost"), 8080, 80, 1, Proto::Tcp)),
        (
            "invalid-config",
            "invalid published port localhost:8080:80/tcp: \"localhost\" is not an IP address"
                .into()
        )
    );
}

#[test]
fn veth_names_fit_ifnamsiz() {
    assert_eq!(VETH.len(), 15);
    assert_eq!(
        VETH,
        veth_name(
            net_common::testing::CONTAINER_ID,
            net_common::testing::NETWORK_ID
        )
    );
}
