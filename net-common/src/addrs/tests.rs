use super::*;
use crate::message;
use crate::wit::{Attach, LinkInfo, Network};

fn sub(cidr: &str, gateway: Option<&str>) -> Subnet {
    Subnet {
        cidr: cidr.into(),
        gateway: gateway.map(Into::into),
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn err(r: Result<Vec<Sub>, Error>) -> String {
    message(&r.unwrap_err()).to_string()
}

#[test]
fn user_subnets_get_the_first_host_as_gateway() {
    let got = check_subnets(
        &[
            sub("172.20.0.0/16", None),
            sub("10.9.0.0/24", Some("10.9.0.254")),
        ],
        false,
        &[],
    )
    .unwrap();
    let wit: Vec<(String, Option<String>)> = got
        .into_iter()
        .map(|s| {
            let w = s.to_wit();
            (w.cidr, w.gateway)
        })
        .collect();
    assert_eq!(
        wit,
        [
            ("172.20.0.0/16".to_string(), Some("172.20.0.1".to_string())),
            ("10.9.0.0/24".to_string(), Some("10.9.0.254".to_string())),
        ]
    );
    let v6 = check_subnets(&[sub("fd00:1::/64", None)], true, &[]).unwrap();
    assert_eq!(v6[0].gateway_cidr(), "fd00:1::1/64");
}

#[test]
fn bad_subnets_are_refused_with_what_to_fix() {
    assert_eq!(
        err(check_subnets(&[sub("172.20.0.0", None)], false, &[])),
        "invalid subnet \"172.20.0.0\": expected an address and prefix length such as 172.20.0.0/16"
    );
    assert_eq!(
        err(check_subnets(&[sub("172.20.0.5/16", None)], false, &[])),
        "invalid subnet 172.20.0.5/16: it should be 172.20.0.0/16"
    );
    assert_eq!(
        err(check_subnets(&[sub("fd00::/64", None)], false, &[])),
        "subnet fd00::/64 is IPv6: add --ipv6 to use it"
    );
    assert_eq!(
        err(check_subnets(&[sub("10.0.0.0/31", None)], false, &[])),
        "subnet 10.0.0.0/31 is too small: use a /30 or larger"
    );
    assert_eq!(
        err(check_subnets(&[sub("fd00::/127", None)], true, &[])),
        "subnet fd00::/127 is too small: use a /126 or larger"
    );
    assert_eq!(
        err(check_subnets(
            &[sub("10.0.0.0/16", None), sub("10.0.1.0/24", None)],
            false,
            &[]
        )),
        "subnets 10.0.0.0/16 and 10.0.1.0/24 overlap"
    );
    assert_eq!(
        err(check_subnets(
            &[sub("172.17.0.0/24", None)],
            false,
            &[net("172.17.0.0/16")]
        )),
        "subnet 172.17.0.0/24 overlaps 172.17.0.0/16, which is already in use on this host: choose another --subnet"
    );
    assert_eq!(
        err(check_subnets(
            &[sub("10.0.0.0/24", Some("10.0.1.1"))],
            false,
            &[]
        )),
        "gateway 10.0.1.1 is not in subnet 10.0.0.0/24"
    );
    assert_eq!(
        err(check_subnets(&[sub("10.0.0.0/24", Some("gw"))], false, &[])),
        "invalid gateway \"gw\": expected an IP address"
    );
    assert_eq!(
        err(check_subnets(
            &[sub("10.0.0.0/24", Some("10.0.0.0"))],
            false,
            &[]
        )),
        "gateway 10.0.0.0 is the network address of subnet 10.0.0.0/24"
    );
    assert_eq!(
        err(check_subnets(
            &[sub("10.0.0.0/24", Some("10.0.0.255"))],
            false,
            &[]
        )),
        "gateway 10.0.0.255 is the broadcast address of subnet 10.0.0.0/24"
    );
}

#[test]
fn default_pool_skips_what_the_host_uses() {
    assert_eq!(free_v4(&[]).unwrap().to_string(), "172.17.0.0/16");
    // The default network holds 172.17/16; the host's LAN sits in 172.18.5.0/24.
    let avoid = [net("172.17.0.0/16"), net("172.18.5.0/24")];
    assert_eq!(free_v4(&avoid).unwrap().to_string(), "172.19.0.0/16");
    // A host route covering all of 172.16.0.0/12 sends new networks to 192.168.x.0/20.
    let avoid = [net("172.16.0.0/12"), net("192.168.0.0/20")];
    assert_eq!(free_v4(&avoid).unwrap().to_string(), "192.168.16.0/20");
    let full = [net("172.16.0.0/12"), net("192.168.0.0/16")];
    assert_eq!(
        message(&free_v4(&full).unwrap_err()),
        "no free IPv4 subnet is left in the default pools 172.17.0.0/16-172.31.0.0/16 and 192.168.0.0/16: pass --subnet"
    );
    assert_eq!(v4_pool().count(), 15 + 16);
}

#[test]
fn ipv6_default_is_a_ula_of_the_network_id() {
    let a = free_v6("aaaa", &[]).unwrap();
    let b = free_v6("bbbb", &[]).unwrap();
    assert_ne!(a, b);
    assert_eq!(a.prefix_len(), 64);
    assert!(net("fd00::/8").contains(&IpNet::V6(a)), "{a}");
    assert_eq!(a.trunc(), a);
    let next = free_v6("aaaa", &[IpNet::V6(a)]).unwrap();
    assert_eq!(
        u128::from(next.network()) - u128::from(a.network()),
        1 << 64,
        "{a} then {next}"
    );
}

#[test]
fn used_nets_reads_subnets_and_link_addresses() {
    let facts = HostFacts {
        rootless: true,
        links: vec![LinkInfo {
            name: "eth0".into(),
            kind: "device".into(),
            mtu: 1500,
            up: true,
            addrs: vec!["192.168.1.20/24".into(), "fe80::1/64".into()],
        }],
        used_subnets: vec![
            "172.17.0.0/16".into(),
            "0.0.0.0/0".into(),
            "10.0.0.7".into(),
        ],
    };
    let got: Vec<String> = used_nets(&facts)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        got,
        [
            "172.17.0.0/16",
            "10.0.0.7/32",
            "192.168.1.0/24",
            "fe80::/64"
        ]
    );
    let broken = HostFacts {
        used_subnets: vec!["nonsense".into()],
        ..facts
    };
    assert_eq!(
        message(&used_nets(&broken).unwrap_err()),
        "the host reported an unreadable subnet \"nonsense\" in use"
    );
}

fn attach(ips: &[&str]) -> Attach {
    Attach {
        container_id: "c".into(),
        name: "web".into(),
        hostname: None,
        network: Network {
            id: "n".into(),
            name: "front".into(),
            driver: "bridge".into(),
            iface: None,
            subnets: vec![],
            ipv6: false,
            internal: false,
            dns: true,
            options: vec![],
        },
        ifname: "eth0".into(),
        ips: ips.iter().map(|s| s.to_string()).collect(),
        mac: None,
        aliases: vec![],
        ports: vec![],
    }
}

#[test]
fn container_addresses_must_sit_in_the_network() {
    let subs = check_subnets(
        &[sub("172.20.0.0/16", None), sub("fd00::/64", None)],
        true,
        &[],
    )
    .unwrap();
    let got = assign(&attach(&["172.20.0.2", "fd00::2/64"]), &subs).unwrap();
    let cidrs: Vec<String> = got.iter().map(|a| a.cidr()).collect();
    assert_eq!(cidrs, ["172.20.0.2/16", "fd00::2/64"]);

    let refused = |ips: &[&str]| message(&assign(&attach(ips), &subs).unwrap_err()).to_string();
    assert_eq!(
        refused(&["10.0.0.2"]),
        "address 10.0.0.2 is not in a subnet of network front (172.20.0.0/16, fd00::/64)"
    );
    assert_eq!(
        refused(&["172.20.0.1"]),
        "address 172.20.0.1 is the gateway of network front"
    );
    assert_eq!(
        refused(&["172.20.255.255"]),
        "address 172.20.255.255 is the broadcast address of subnet 172.20.0.0/16"
    );
    assert_eq!(
        refused(&["172.20.0.0"]),
        "address 172.20.0.0 is the network address of subnet 172.20.0.0/16"
    );
    assert_eq!(
        refused(&["172.20.0.2/24"]),
        "address 172.20.0.2/24 does not match subnet 172.20.0.0/16 of network front"
    );
    assert_eq!(
        refused(&["172.20.0.2", "172.20.0.2"]),
        "address 172.20.0.2 is given twice"
    );
    assert_eq!(refused(&["web"]), "invalid IP address \"web\"");
    let none = assign(&attach(&[]), &subs).unwrap_err();
    assert!(matches!(none, Error::Internal(_)));
    assert_eq!(
        message(&none),
        "no address was allocated for container web on network front"
    );
}
