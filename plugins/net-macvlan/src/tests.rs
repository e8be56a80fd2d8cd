use super::*;
use net_common::plan::{render_iface, render_ops};
use net_common::testing::{attach, facts, kv, link, network, port, refusal, subnet};
use net_common::wit::Proto;

/// A host where burrow runs as root, with its LAN on eth0.
fn root() -> HostFacts {
    HostFacts {
        rootless: false,
        links: vec![
            link("lo", "loopback", &["127.0.0.1/8"]),
            link("eth0", "device", &["192.168.1.20/24"]),
            link("wlan0", "device", &[]),
        ],
        used_subnets: vec!["192.168.1.0/24".into()],
    }
}

fn request(opts: &[(&str, &str)], subnets: &[(&str, Option<&str>)]) -> Network {
    let mut n = network("lan", "macvlan");
    n.options = opts.iter().map(|(k, v)| kv(k, v)).collect();
    n.subnets = subnets.iter().map(|(c, g)| subnet(c, *g)).collect();
    n
}

fn lan() -> Network {
    create(
        request(
            &[("parent", "eth0")],
            &[("192.168.1.0/24", Some("192.168.1.1"))],
        ),
        &root(),
    )
    .unwrap()
}

#[test]
fn create_keeps_the_lan_subnet_and_turns_dns_off() {
    let n = lan();
    let subnets: Vec<(String, Option<String>)> = n
        .subnets
        .iter()
        .map(|s| (s.cidr.clone(), s.gateway.clone()))
        .collect();
    assert_eq!(
        subnets,
        [(
            "192.168.1.0/24".to_string(),
            Some("192.168.1.1".to_string())
        )]
    );
    assert!(!n.dns);
    assert_eq!(n.iface, None);

    let n = create(
        request(
            &[("parent", "wlan0"), ("macvlan_mode", "private")],
            &[("10.5.0.0/16", None)],
        ),
        &root(),
    )
    .unwrap();
    assert_eq!(n.subnets[0].gateway.as_deref(), Some("10.5.0.1"));
    for mode in ["bridge", "vepa", "private", "passthru"] {
        let req = request(
            &[("parent", "eth0"), ("macvlan_mode", mode)],
            &[("192.168.1.0/24", None)],
        );
        assert!(create(req, &root()).is_ok(), "{mode}");
    }
}

#[test]
fn rootless_create_is_refused_saying_why_and_what_to_do() {
    let req = request(&[("parent", "eth0")], &[("192.168.1.0/24", None)]);
    assert_eq!(
        refusal(create(req, &facts()).unwrap_err()),
        (
            "denied",
            "macvlan networks need privileges over the parent interface eth0, which a rootless user does not hold: run burrow as root to use macvlan".into()
        )
    );
}

#[test]
fn bad_macvlan_networks_are_refused() {
    let refused = |req: Network| refusal(create(req, &root()).unwrap_err());
    let lan = [("192.168.1.0/24", None)];
    assert_eq!(
        refused(request(&[], &lan)),
        (
            "invalid-config",
            "macvlan network driver needs -o parent=INTERFACE: the host interface whose LAN the containers join".into()
        )
    );
    assert_eq!(
        refused(request(&[("parent", "eth9")], &lan)),
        (
            "invalid-config",
            "parent interface eth9 was not found on this host (it has: eth0, wlan0)".into()
        )
    );
    assert_eq!(
        refused(request(&[("parent", "eth0"), ("macvlan_mode", "bridged")], &lan)),
        (
            "invalid-config",
            "requested macvlan mode 'bridged' is not valid: use bridge (the default), vepa, private or passthru".into()
        )
    );
    assert_eq!(
        refused(request(
            &[
                ("parent", "eth0"),
                ("com.docker.network.driver.mtu", "1400")
            ],
            &lan
        )),
        (
            "invalid-config",
            "unknown option 'com.docker.network.driver.mtu' for macvlan network driver".into()
        )
    );
    assert_eq!(
        refused(request(&[("parent", "eth0")], &[])),
        (
            "invalid-config",
            "macvlan network driver needs --subnet (and usually --gateway): the containers' addresses come from the LAN of eth0".into()
        )
    );
    assert_eq!(
        refused(request(
            &[("parent", "eth0")],
            &[("192.168.1.0/24", Some("192.168.2.1"))]
        )),
        (
            "invalid-config",
            "gateway 192.168.2.1 is not in subnet 192.168.1.0/24".into()
        )
    );
    let mut internal = request(&[("parent", "eth0")], &lan);
    internal.internal = true;
    assert_eq!(
        refused(internal),
        (
            "unsupported",
            "macvlan network driver does not support --internal".into()
        )
    );
    let mut v6 = request(&[("parent", "eth0")], &lan);
    v6.ipv6 = true;
    assert_eq!(
        refused(v6),
        (
            "invalid-config",
            "macvlan network driver needs an IPv6 --subnet with --ipv6".into()
        )
    );
}

#[test]
fn setup_puts_a_macvlan_in_the_container_and_teardown_removes_it() {
    let mut a = attach(lan(), &["192.168.1.50"]);
    a.ports = vec![port(None, 8080, 80, 1, Proto::Tcp)];
    let plan = setup(&a, &root()).unwrap();
    assert_eq!(
        render_ops(&plan),
        [
            "link macvlan eth0 parent eth0 mode bridge mac 02:42:c0:a8:01:32",
            "addr container eth0 192.168.1.50/24",
            "up container eth0",
            "up container lo",
            "route container 0.0.0.0/0 via 192.168.1.1 dev eth0",
        ]
    );
    let ifaces: Vec<String> = plan.ifaces.iter().map(render_iface).collect();
    assert_eq!(
        ifaces,
        ["eth0 02:42:c0:a8:01:32 192.168.1.50/24 via 192.168.1.1"]
    );
    assert!(plan.dns_servers.is_empty(), "the host's resolvers");

    assert_eq!(
        render_ops(&teardown(&a, &root()).unwrap()),
        ["link macvlan eth0 parent eth0 mode bridge mac 02:42:c0:a8:01:32"]
    );
}

#[test]
fn dual_stack_vepa_with_a_requested_mac() {
    let mut req = request(
        &[("parent", "eth0"), ("macvlan_mode", "vepa")],
        &[
            ("192.168.1.0/24", Some("192.168.1.254")),
            ("2001:db8:1::/64", None),
        ],
    );
    req.ipv6 = true;
    let mut a = attach(
        create(req, &root()).unwrap(),
        &["192.168.1.50", "2001:db8:1::50"],
    );
    a.mac = Some("92:d0:c6:0a:29:33".into());
    a.ifname = "lan0".into();
    let plan = setup(&a, &root()).unwrap();
    assert_eq!(
        render_ops(&plan),
        [
            "link macvlan lan0 parent eth0 mode vepa mac 92:d0:c6:0a:29:33",
            "addr container lan0 192.168.1.50/24",
            "addr container lan0 2001:db8:1::50/64",
            "up container lan0",
            "up container lo",
            "route container 0.0.0.0/0 via 192.168.1.254 dev lan0",
            "route container ::/0 via 2001:db8:1::1 dev lan0",
        ]
    );
}

#[test]
fn setup_is_refused_when_the_host_cannot_carry_it_out() {
    let a = attach(lan(), &["192.168.1.50"]);
    assert_eq!(
        refusal(setup(&a, &facts()).unwrap_err()).0,
        "denied",
        "rootless"
    );
    let mut gone = root();
    gone.links.retain(|l| l.name != "eth0");
    assert_eq!(
        refusal(setup(&a, &gone).unwrap_err()),
        (
            "unavailable",
            "parent interface eth0 of network lan is gone from this host".into()
        )
    );
    let outside = attach(lan(), &["192.168.2.50"]);
    assert_eq!(
        refusal(setup(&outside, &root()).unwrap_err()),
        (
            "invalid-config",
            "address 192.168.2.50 is not in a subnet of network lan (192.168.1.0/24)".into()
        )
    );
}
