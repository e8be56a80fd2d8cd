//! `network create|ls|inspect|rm|prune` as an unprivileged user: the driver plugins fill in
//! defaults and refuse bad options, the host checks the address pools.

mod common;

use common::User;
use serde_json::Value;

fn inspect(u: &User, name: &str) -> Value {
    let o = u.burrow(&["network", "inspect", name]);
    let docs: Value = serde_json::from_str(&o.ok().stdout).unwrap();
    docs[0].clone()
}

#[test]
fn predefined_networks_are_listed_and_cannot_be_removed() {
    let u = User::new("net_predef");
    let o = u.burrow(&["network", "ls"]);
    let text = &o.ok().stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0], "NETWORK ID     NAME      DRIVER    SCOPE",
        "{text}"
    );
    let names: Vec<(&str, &str)> = lines[1..]
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f[0].len(), 12, "{l}");
            assert_eq!(f[3], "local", "{l}");
            (f[1], f[2])
        })
        .collect();
    assert_eq!(
        names,
        [("bridge", "bridge"), ("host", "host"), ("none", "none")]
    );
    // The default bridge has a subnet and a gateway from its driver.
    let bridge = inspect(&u, "bridge");
    let subnet = bridge["IPAM"]["Config"][0]["Subnet"].as_str().unwrap();
    assert!(subnet.contains('/'), "{bridge:#}");
    assert!(
        bridge["IPAM"]["Config"][0]["Gateway"].is_string(),
        "{bridge:#}"
    );
    for name in ["bridge", "host", "none"] {
        u.burrow(&["network", "rm", name])
            .code(1)
            .stderr_has("is a pre-defined network and cannot be removed");
        u.burrow(&["network", "create", name])
            .code(125)
            .one_line_error()
            .stderr_has(&format!("network with name {name} already exists"));
    }
    // Ids are stable across commands.
    let again = inspect(&u, "bridge");
    assert_eq!(again["Id"], bridge["Id"]);
}

#[test]
fn create_inspect_rm_and_prune() {
    let u = User::new("net_crud");
    let id = u
        .burrow(&[
            "network",
            "create",
            "--subnet",
            "10.89.1.0/24",
            "--ip-range",
            "10.89.1.128/25",
            "--label",
            "team=a",
            "n1",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    let n1 = inspect(&u, "n1");
    assert_eq!(n1["Id"], id.as_str());
    assert_eq!(n1["Name"], "n1");
    assert_eq!(n1["Driver"], "bridge");
    assert_eq!(n1["Scope"], "local");
    assert_eq!(n1["Internal"], false);
    assert_eq!(
        n1["IPAM"]["Config"],
        serde_json::json!([{
            "Subnet": "10.89.1.0/24",
            "IPRange": "10.89.1.128/25",
            "Gateway": "10.89.1.1"
        }])
    );
    assert_eq!(n1["Labels"], serde_json::json!({"team": "a"}));
    assert_eq!(n1["Containers"], serde_json::json!({}));
    // By id prefix, with a template.
    let o = u.burrow(&[
        "network",
        "inspect",
        "-f",
        "{{.Name}} {{.Driver}}",
        &id[..8],
    ]);
    assert_eq!(o.ok().stdout, "n1 bridge\n");
    // A second network without --subnet gets its own, not overlapping n1's or the default's.
    u.burrow(&["network", "create", "--internal", "n2"]).ok();
    let n2 = inspect(&u, "n2");
    assert_eq!(n2["Internal"], true);
    let s2 = n2["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap()
        .to_string();
    let bridge = inspect(&u, "bridge");
    let sb = bridge["IPAM"]["Config"][0]["Subnet"].as_str().unwrap();
    assert_ne!(s2, "10.89.1.0/24");
    assert_ne!(s2, sb);
    // ls: filters, quiet, format.
    let o = u.burrow(&[
        "network",
        "ls",
        "--filter",
        "label=team=a",
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(o.ok().stdout, "n1\n");
    let o = u.burrow(&["network", "ls", "-q", "--filter", "name=n"]);
    let ids: Vec<&str> = o.ok().stdout.lines().collect::<Vec<_>>();
    assert!(ids.contains(&&id[..12]), "{ids:?}");
    assert!(ids.iter().all(|i| i.len() == 12), "{ids:?}");
    // rm by name prints it; prune takes the rest but not the predefined ones.
    assert_eq!(u.burrow(&["network", "rm", "n1"]).ok().stdout, "n1\n");
    u.burrow(&["network", "inspect", "n1"])
        .code(1)
        .stderr_has("no such network: n1");
    let o = u.burrow(&["network", "prune", "-f"]);
    assert_eq!(o.ok().stdout, "Deleted Networks:\nn2\n");
    let o = u.burrow(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(o.ok().stdout, "bridge\nhost\nnone\n");
    // Docker's network events for both.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let o = u.burrow(&[
        "events",
        "--since",
        "0",
        "--until",
        &until.to_string(),
        "--filter",
        "type=network",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}}",
    ]);
    assert_eq!(
        o.ok().stdout,
        "create n1 bridge\ncreate n2 bridge\ndestroy n1 bridge\ndestroy n2 bridge\n"
    );
}

#[test]
fn bad_network_options_are_refused_at_create() {
    let u = User::new("net_bad");
    let refused = |args: &[&str], needle: &str| {
        let mut all = vec!["network", "create"];
        all.extend_from_slice(args);
        u.burrow(&all).code(125).one_line_error().stderr_has(needle);
    };
    refused(
        &["--subnet", "10.89.2.5/24", "x"],
        "invalid subnet 10.89.2.5/24: it should be 10.89.2.0/24",
    );
    refused(&["--subnet", "banana", "x"], "invalid subnet");
    refused(
        &["--subnet", "10.89.2.0/24", "--gateway", "10.9.9.1", "x"],
        "gateway 10.9.9.1 is not in subnet 10.89.2.0/24",
    );
    refused(
        &["--subnet", "10.89.2.0/24", "--ip-range", "10.9.9.0/28", "x"],
        "no matching subnet for range 10.9.9.0/28",
    );
    refused(&["--gateway", "10.9.9.1", "x"], "needs a --subnet");
    refused(&["-d", "nosuch", "x"], "plugin \"nosuch\" not found");
    refused(&["-o", "bogus.option=1", "x"], "bogus.option");
    refused(&["--ipv6", "x"], "--ipv6 is not available yet");
    refused(&["bad/name"], "invalid network name");
    u.burrow(&["network", "create", "--subnet", "10.89.3.0/24", "ok"])
        .ok();
    refused(
        &["--subnet", "10.89.3.128/25", "x"],
        "overlaps 10.89.3.0/24, which is already in use on this host",
    );
    // macvlan needs privilege over the parent interface: rootless, create says so.
    refused(
        &[
            "-d",
            "macvlan",
            "--subnet",
            "10.89.4.0/24",
            "-o",
            "parent=lo",
            "x",
        ],
        "root",
    );
    // Nothing was recorded by the refusals.
    let o = u.burrow(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(o.ok().stdout, "bridge\nhost\nnone\nok\n");
}

#[test]
fn add_host_and_dns_flags_reach_the_container() {
    let u = User::new("net_dns");
    let img = u.pull("busybox");
    let o = u.burrow(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--hostname",
        "web",
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "cache:fd00::7",
        "--dns",
        "10.0.0.53",
        "--dns-search",
        "corp.example",
        "--dns-option",
        "ndots:1",
        &img,
        "cat",
        "/etc/hosts",
        "/etc/resolv.conf",
    ]);
    assert_eq!(
        o.ok().stdout,
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tweb\n\
         10.1.2.3\tdb\nfd00::7\tcache\n\
         nameserver 10.0.0.53\nsearch corp.example\noptions ndots:1\n"
    );
    // Kept in the container's configuration, as Docker shows it.
    u.burrow(&[
        "create",
        "--name",
        "c",
        "--add-host",
        "db:10.1.2.3",
        "--dns",
        "10.0.0.53",
        &img,
        "true",
    ])
    .ok();
    let o = u.burrow(&[
        "inspect",
        "-f",
        "{{json .HostConfig.ExtraHosts}} {{json .HostConfig.Dns}}",
        "c",
    ]);
    assert_eq!(o.ok().stdout, "[\"db:10.1.2.3\"] [\"10.0.0.53\"]\n");
    // Bad values are refused before anything is created.
    u.burrow(&["run", "--rm", "--add-host", "db", &img, "true"])
        .code(125)
        .one_line_error()
        .stderr_has("use HOST:IP");
    u.burrow(&["run", "--rm", "--dns", "dns.example", &img, "true"])
        .code(125)
        .one_line_error()
        .stderr_has("is not an ip address");
    assert_eq!(u.burrow(&["ps", "-aq"]).ok().stdout.lines().count(), 1);
}

/// Removes the test's containers and ends its network holder, also when the test fails.
struct Cleanup<'a>(&'a User);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let ids = self.0.burrow(&["ps", "-aq"]).stdout.clone();
        for id in ids.lines() {
            self.0.burrow(&["rm", "-f", id]);
        }
        self.0.stop_holder();
    }
}

/// The address a new container on `network` gets (`ip -4 -o addr show eth0`).
fn next_address(u: &User, img: &str, network: &str) -> String {
    let o = u.burrow(&[
        "run",
        "--rm",
        "--network",
        network,
        img,
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    let out = &o.ok().stdout;
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or_else(|| panic!("no address: {o:?}"))
        .to_string()
}

/// `wget` from a container on `network`, retried for a few seconds while the server starts.
/// (busybox-static's `wget -T` crashes, so `timeout` bounds each try.)
fn fetch(u: &User, img: &str, network: &str, url: &str) -> common::Out {
    let script = format!(
        "for i in $(seq 50); do timeout 2 wget -q -O - {url} && exit 0; sleep 0.1; done; exit 1"
    );
    sh_on(u, img, network, &script)
}

/// Starts `name`, detached with `args`, serving `page` over HTTP on port 80 (busybox httpd).
fn web(u: &User, img: &str, name: &str, page: &str, args: &[&str]) {
    let serve =
        format!("mkdir /www && echo {page} > /www/index.html && exec httpd -f -p 80 -h /www");
    let mut argv = vec!["run", "-d", "--name", name];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&[img, "sh", "-c", &serve]);
    u.burrow(&argv).ok();
}

#[test]
fn containers_on_a_bridge_network_reach_each_other_and_other_networks_do_not() {
    let u = User::new("net_bridge");
    let _cleanup = Cleanup(&u);
    let img = u.pull("busybox");
    for (name, subnet) in [("front", "10.89.7.0/24"), ("back", "10.89.8.0/24")] {
        u.burrow(&["network", "create", "--subnet", subnet, name])
            .ok();
    }
    web(&u, &img, "web", "hello-from-web", &["--network", "front"]);
    // Addresses are handed out in order after the gateway (.1).
    let ip = u.field("web", "{{.NetworkSettings.IPAddress}}");
    assert_eq!(ip, "10.89.7.2");
    assert_eq!(
        u.field("web", "{{.NetworkSettings.Networks.front.Gateway}}"),
        "10.89.7.1"
    );
    let hosts = u
        .burrow(&["exec", "web", "cat", "/etc/hosts"])
        .ok()
        .stdout
        .clone();
    let hostname = u.field("web", "{{.Config.Hostname}}");
    assert!(
        hosts.contains(&format!("10.89.7.2\t{hostname}\n")),
        "{hosts}"
    );
    let eth0 = u
        .burrow(&["exec", "web", "ip", "addr", "show", "eth0"])
        .ok()
        .stdout
        .clone();
    assert!(eth0.contains("inet 10.89.7.2/24"), "{eth0}");
    assert!(eth0.contains("link/ether 02:42:0a:59:07:02"), "{eth0}");

    // A container on the same network fetches the page.
    let o = fetch(&u, &img, "front", "http://10.89.7.2/");
    assert_eq!(o.ok().stdout, "hello-from-web\n");
    // One on another network cannot reach it (`timeout` under sh: pid 1 ignores SIGTERM).
    let o = sh_on(
        &u,
        &img,
        "back",
        "timeout 2 wget -q -O - http://10.89.7.2/; echo exit=$?",
    );
    assert_eq!(o.ok().stdout, "exit=143\n", "{o:?}");

    // The fetching container's address (.3) was released with it; the next one gets .4.
    let n = inspect(&u, "front");
    let held: Vec<&String> = n["Containers"].as_object().unwrap().keys().collect();
    assert_eq!(held.len(), 1, "{n:#}");
    assert_eq!(next_address(&u, &img, "front"), "10.89.7.4/24");

    // --ip and --mac-address; an address in use, or --ip on the default bridge, is refused.
    let o = u.burrow(&[
        "run",
        "--rm",
        "--network",
        "front",
        "--ip",
        "10.89.7.200",
        "--mac-address",
        "02:42:AA:BB:CC:DD",
        &img,
        "sh",
        "-c",
        "ip -o addr show eth0; ip -o link show eth0",
    ]);
    let out = &o.ok().stdout;
    assert!(out.contains("inet 10.89.7.200/24"), "{out}");
    assert!(out.contains("link/ether 02:42:aa:bb:cc:dd"), "{out}");
    u.burrow(&[
        "create",
        "--network",
        "front",
        "--ip",
        "10.89.7.2",
        &img,
        "true",
    ])
    .code(125)
    .one_line_error()
    .stderr_has("network front: address 10.89.7.2 is already in use");
    u.burrow(&["create", "--ip", "172.17.0.50", &img, "true"])
        .code(125)
        .stderr_has("user specified IP address is supported on user defined networks only");
    u.burrow(&["create", "--mac-address", "01:00:5e:00:00:01", &img, "true"])
        .code(125)
        .stderr_has("a multicast address cannot name an interface");
    // A static address does not move serial allocation: the next one is still .5.
    assert_eq!(next_address(&u, &img, "front"), "10.89.7.5/24");

    u.burrow(&["network", "rm", "front"])
        .code(1)
        .stderr_has("has active endpoints");
    u.burrow(&["rm", "-f", "web"]).ok();
    let n = inspect(&u, "front");
    assert_eq!(n["Containers"], serde_json::json!({}), "{n:#}");
    let bridges = || {
        in_holder(&u, &["ip", "-o", "link", "show"])
            .lines()
            .filter(|l| l.contains(": br-"))
            .count()
    };
    assert_eq!(bridges(), 2);
    u.burrow(&["network", "rm", "front", "back"]).ok();
    // Their bridges left the holder's namespace with them.
    assert_eq!(bridges(), 0);
}

/// The addresses busybox `nslookup NAME` printed for NAME, in order.
fn looked_up(out: &str) -> Vec<String> {
    out.lines()
        .skip_while(|l| !l.starts_with("Name:"))
        .filter_map(|l| l.strip_prefix("Address: "))
        .map(|a| a.trim().to_string())
        .collect()
}

#[test]
fn the_built_in_dns_answers_names_and_aliases_round_robin() {
    let u = User::new("net_names");
    let _cleanup = Cleanup(&u);
    let img = u.pull("busybox");
    u.burrow(&["network", "create", "--subnet", "10.89.11.0/24", "app"])
        .ok();
    for (name, page) in [("web1", "one"), ("web2", "two")] {
        web(
            &u,
            &img,
            name,
            page,
            &["--network", "app", "--network-alias", "svc"],
        );
    }
    // resolv.conf names the built-in DNS on the gateway; names and aliases resolve; the
    // alias's two addresses come in turn (round robin).
    let o = sh_on(
        &u,
        &img,
        "app",
        "cat /etc/resolv.conf; echo ==; nslookup web2; echo ==; nslookup svc; echo ==; nslookup svc; echo ==; nslookup 10.89.11.3",
    );
    let out = o.ok().stdout.clone();
    let parts: Vec<&str> = out.split("==\n").collect();
    assert_eq!(parts.len(), 5, "{out}");
    // An address gets its container's name back (PTR).
    assert!(
        parts[4].contains("3.11.89.10.in-addr.arpa\tname = web2"),
        "{out}"
    );
    assert!(parts[0].starts_with("nameserver 10.89.11.1\n"), "{out}");
    assert!(
        !parts[0].contains("10.255."),
        "the host's resolver leaked in: {out}"
    );
    assert_eq!(looked_up(parts[1]), ["10.89.11.3"], "{out}");
    let first = looked_up(parts[2]);
    let second = looked_up(parts[3]);
    assert_eq!(first.len(), 2, "{out}");
    assert_eq!(
        second,
        [first[1].clone(), first[0].clone()],
        "the alias's addresses should rotate: {out}"
    );
    // A name reaches a server.
    let o = fetch(&u, &img, "app", "http://web2/");
    assert_eq!(o.ok().stdout, "two\n");

    // --link names another container by an alias of the linking container's own.
    let o = u.burrow(&[
        "run",
        "--rm",
        "--network",
        "app",
        "--link",
        "web2:db",
        &img,
        "sh",
        "-c",
        "wget -q -O - http://db/; grep -c '^10.89.11.3\tdb web2 ' /etc/hosts",
    ]);
    assert_eq!(o.ok().stdout, "two\n1\n", "{o:?}");
    u.burrow(&["create", "--link", "web2:db", &img, "true"])
        .code(125)
        .stderr_has("cannot link to web2: it is not on network bridge");

    // Once web1 is gone the alias names web2 alone.
    u.burrow(&["rm", "-f", "web1"]).ok();
    let o = u.burrow(&["run", "--rm", "--network", "app", &img, "nslookup", "svc"]);
    assert_eq!(looked_up(&o.ok().stdout), ["10.89.11.3"], "{o:?}");

    // The default bridge has no DNS, so no aliases (as Docker).
    u.burrow(&[
        "create",
        "--network",
        "bridge",
        "--network-alias",
        "x",
        &img,
        "true",
    ])
    .code(125)
    .one_line_error()
    .stderr_has(
        "network-scoped aliases are supported only for containers in user defined networks",
    );
}

/// "Another host" for egress tests: a network namespace with one end of a veth pair
/// (`PREFIX.2`, the host's end `PREFIX.1`) and busybox httpd on PREFIX.2:8080. Removed on drop.
/// [`TestHost::on_lan`] makes it a device on a LAN instead: the other end is in a namespace of
/// its own (`lan_host`, where burrow runs as root), with no address: a macvlan's parent.
struct TestHost {
    ns: String,
    link: String,
    lan_host: Option<String>,
    www: tempfile::TempDir,
}

impl TestHost {
    fn new(tag: &str, prefix: &str) -> TestHost {
        TestHost::build(tag, prefix, None)
    }

    fn on_lan(tag: &str, prefix: &str) -> TestHost {
        TestHost::build(tag, prefix, Some(format!("burrow-{tag}-host")))
    }

    fn build(tag: &str, prefix: &str, lan_host: Option<String>) -> TestHost {
        let ns = format!("burrow-{tag}");
        let link = format!("bt-{tag}");
        let www = tempfile::tempdir().unwrap();
        std::fs::write(www.path().join("index.html"), format!("page-from-{tag}\n")).unwrap();
        let host = TestHost {
            ns,
            link,
            lan_host,
            www,
        };
        host.remove();
        let ip = |args: &[&str]| {
            let o = std::process::Command::new("ip")
                .args(args)
                .output()
                .unwrap();
            assert!(o.status.success(), "ip {args:?}: {o:?}");
        };
        let (ns, link) = (host.ns.as_str(), host.link.as_str());
        ip(&["netns", "add", ns]);
        // The link's side: the host's namespace, or the LAN host's.
        let side: Vec<&str> = match &host.lan_host {
            Some(h) => {
                ip(&["netns", "add", h]);
                ip(&["-n", h, "link", "set", "lo", "up"]);
                vec!["-n", h]
            }
            None => vec![],
        };
        let on_side = |args: &[&str]| ip(&[&side[..], args].concat());
        on_side(&[
            "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ]);
        if host.lan_host.is_none() {
            on_side(&["addr", "add", &format!("{prefix}.1/24"), "dev", link]);
        }
        on_side(&["link", "set", link, "up"]);
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{prefix}.2/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", ns, "link", "set", "eth0", "up"]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        let www = host.www.path().display().to_string();
        ip(&[
            "netns",
            "exec",
            ns,
            "busybox",
            "httpd",
            "-p",
            &format!("{prefix}.2:8080"),
            "-h",
            &www,
        ]);
        host
    }

    fn remove(&self) {
        for ns in std::iter::once(&self.ns).chain(&self.lan_host) {
            let pids = std::process::Command::new("ip")
                .args(["netns", "pids", ns])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for pid in pids.split_whitespace() {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", pid])
                    .status();
            }
        }
        let mut steps = vec![vec!["netns", "del", self.ns.as_str()]];
        match &self.lan_host {
            Some(h) => steps.push(vec!["netns", "del", h.as_str()]),
            None => steps.push(vec!["link", "del", self.link.as_str()]),
        }
        for args in steps {
            let _ = std::process::Command::new("ip")
                .args(&args)
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.remove();
    }
}

#[test]
fn containers_reach_another_host_but_not_the_hosts_loopback() {
    let _other = TestHost::new("egress", "10.231.5");
    let u = User::new("net_egress");
    let _cleanup = Cleanup(&u);
    let img = u.pull("busybox");
    u.burrow(&["network", "create", "--subnet", "10.89.12.0/24", "out"])
        .ok();
    // From the default bridge and from a user-defined network, through the holder's
    // way out (libslirp, burrow's default).
    for network in ["bridge", "out"] {
        let o = fetch(&u, &img, network, "http://10.231.5.2:8080/");
        assert_eq!(o.ok().stdout, "page-from-egress\n", "{network}");
    }
    // TCP goes out through the way out's proxy: while a container holds a connection to the
    // other host, the holder's namespace has the proxy's end of it, which answers as that host.
    let hold = "sleep 60 | nc 10.231.5.2 8080";
    u.burrow(&["run", "-d", "--name", "holds", &img, "sh", "-c", hold])
        .ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !holder_sockets(&u).contains(" 10.231.5.2:8080 ") {
        assert!(
            std::time::Instant::now() < deadline,
            "no proxied connection in the holder's namespace: {}",
            holder_sockets(&u)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    u.burrow(&["rm", "-f", "holds"]).ok();
    // Where the far end says no, the container hears it as from a router: a closed port
    // refuses, a host that is not there is unreachable.
    let o = sh_on(
        &u,
        &img,
        "bridge",
        "wget -q -O - http://10.231.5.2:8081/ 2>&1; timeout 20 wget -q -O - http://10.231.5.99:8080/ 2>&1; true",
    );
    let out = &o.ok().stdout;
    assert!(
        out.contains("can't connect to remote host (10.231.5.2): Connection refused"),
        "{o:?}"
    );
    assert!(
        out.contains("can't connect to remote host (10.231.5.99): No route to host"),
        "{o:?}"
    );
    // Many at once, each whole.
    let many = "for i in $(seq 100); do wget -q -O /tmp/p$i http://10.231.5.2:8080/ & done; wait; cat /tmp/p* | grep -c page-from-egress";
    let o = sh_on(&u, &img, "bridge", many);
    assert_eq!(o.ok().stdout, "100\n");
    // The host's own loopback services (the test registry on 127.0.0.1) stay closed: slirp's
    // host address 10.0.2.2 does not lead there.
    let registry = common::registry();
    let port = registry.rsplit(':').next().unwrap();
    let script = format!("timeout 5 wget -q -O - http://10.0.2.2:{port}/v2/; echo exit=$?");
    let o = sh_on(&u, &img, "bridge", &script);
    let out = &o.ok().stdout;
    assert!(out.starts_with("exit=") && out != "exit=0\n", "{o:?}");
    // A network made with -o allow_host_loopback=true opens them, by name.
    u.burrow(&[
        "network",
        "create",
        "--subnet",
        "10.89.13.0/24",
        "-o",
        "allow_host_loopback=true",
        "open",
    ])
    .ok();
    let script = format!(
        "grep host.containers.internal /etc/hosts; wget -q -O - http://host.containers.internal:{port}/v2/; echo; wget -q -O - http://gw:{port}/v2/"
    );
    let o = u.burrow(&[
        "run",
        "--rm",
        "--network",
        "open",
        "--add-host",
        "gw:host-gateway",
        &img,
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(
        o.ok().stdout,
        "10.0.2.2\thost.containers.internal host.docker.internal\n{}\n{}",
        "{o:?}"
    );
    u.burrow(&[
        "create",
        "--network",
        "out",
        "--add-host",
        "gw:host-gateway",
        &img,
        "true",
    ])
    .code(125)
    .stderr_has("the host's loopback is closed to network out");

    // The way out is burrow's own (libslirp), and it goes with the holder.
    way_out_goes_with_the_holder(&u, "__egress --holder {pid} --exit-fd");
}

#[test]
fn slirp4netns_or_pasta_carry_the_way_out_when_configured() {
    let _other = TestHost::new("egress4", "10.231.6");
    let u = User::new("net_other_ways");
    let _cleanup = Cleanup(&u);
    let img = u.pull("busybox");
    let cfg = u.home.join(".config/burrow");
    std::fs::create_dir_all(&cfg).unwrap();
    let _ = std::process::Command::new("chown")
        .args(["-R", &format!("{}:", u.name)])
        .arg(u.home.join(".config"))
        .status();
    let config = |text: &str| {
        std::fs::write(cfg.join("burrow.toml"), text).unwrap();
        let _ = std::process::Command::new("chmod")
            .arg("a+r")
            .arg(cfg.join("burrow.toml"))
            .status();
    };
    config("rootless_network_cmd = \"vpnkit\"\n");
    u.burrow(&["network", "ls"])
        .code(125)
        .stderr_has("rootless_network_cmd")
        .stderr_has("expected one of `libslirp`, `slirp4netns`, `pasta`");
    // Each on a fresh holder; pgrep patterns that find each program for the holder's pid.
    for (way, program) in [
        ("slirp4netns", "--userns-path=/proc/{pid}/ns/user"),
        ("pasta", "pasta.pid {pid}$"),
    ] {
        config(&format!("rootless_network_cmd = \"{way}\"\n"));
        let o = fetch(&u, &img, "bridge", "http://10.231.6.2:8080/");
        assert_eq!(o.ok().stdout, "page-from-egress4\n", "{way}");
        way_out_goes_with_the_holder(&u, program);
    }
}

#[test]
fn slirp4netns_carries_the_way_out_when_libslirp_cannot_be_loaded() {
    let _other = TestHost::new("egress7", "10.231.7");
    let mut u = User::new("net_no_libslirp");
    // The loader finds a file that is not a library before the installed libslirp.so.0.
    let lib = u.home.join("no-libslirp");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("libslirp.so.0"), "not a library\n").unwrap();
    // Debian's slirp4netns loads libslirp.so.0 too; this one stands for a static build (as
    // upstream releases are): it runs the real one without the broken library path.
    let bin = u.home.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let wrapper = bin.join("slirp4netns");
    let script = "#!/bin/sh\nexec env -u LD_LIBRARY_PATH /usr/bin/slirp4netns \"$@\"\n";
    std::fs::write(&wrapper, script).unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    u.env
        .push(("LD_LIBRARY_PATH".into(), lib.display().to_string()));
    u.env
        .push(("PATH".into(), format!("{}:/usr/bin:/bin", bin.display())));
    let _cleanup = Cleanup(&u);
    let img = u.pull("busybox");
    let o = fetch(&u, &img, "bridge", "http://10.231.7.2:8080/");
    assert_eq!(o.ok().stdout, "page-from-egress7\n");
    way_out_goes_with_the_holder(&u, "--userns-path=/proc/{pid}/ns/user");
}

/// The pid of the user's network holder, as burrow recorded it.
fn holder_pid(u: &User) -> String {
    let holder: Value = serde_json::from_str(
        &std::fs::read_to_string(u.home.join("run/burrow/network/holder.json")).unwrap(),
    )
    .unwrap();
    holder["pid"].to_string()
}

/// What `command` prints run in the user's network holder's network namespace.
fn in_holder(u: &User, command: &[&str]) -> String {
    let o = std::process::Command::new("nsenter")
        .args(["-t", &holder_pid(u), "-n"])
        .args(command)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The TCP sockets in the user's network holder's namespace, as `ss -tnH` lists them.
fn holder_sockets(u: &User) -> String {
    in_holder(u, &["ss", "-tnH"])
}

/// Asserts that the user's network holder has a way-out process, found by `pattern` with
/// `{pid}` standing for the holder's pid, and that it ends when the holder does.
fn way_out_goes_with_the_holder(u: &User, pattern: &str) {
    let needle = pattern.replace("{pid}", &holder_pid(u));
    let running = || {
        !std::process::Command::new("pgrep")
            .args(["-f", "--", &needle])
            .output()
            .unwrap()
            .stdout
            .is_empty()
    };
    assert!(running(), "no {needle:?} for the holder");
    u.stop_holder();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while running() {
        assert!(
            std::time::Instant::now() < deadline,
            "{needle:?} outlived its holder"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The first of `n` consecutive TCP and UDP ports free on 127.0.0.1 just now.
fn free_ports(n: u16) -> u16 {
    loop {
        let base = free_port();
        let free = (base..base.saturating_add(n)).all(|p| {
            std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
        });
        if free && base.checked_add(n).is_some() {
            return base;
        }
    }
}

/// A TCP port free on 127.0.0.1 just now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The body of `GET /` on `addr`, retried for a few seconds while the server starts.
fn http_get(addr: &str) -> Result<String, String> {
    http_get_path(addr, "/")
}

/// The body of `GET path` on `addr`, as [`http_get`].
fn http_get_path(addr: &str, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect(addr)?;
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
            s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text)
        })();
        match attempt {
            Ok(t) if t.starts_with("HTTP/1.") => {
                // CGI scripts may end their headers with a bare "\n\n".
                let body = t
                    .split_once("\r\n\r\n")
                    .or_else(|| t.split_once("\n\n"))
                    .map_or("", |(_, body)| body);
                return Ok(body.to_string());
            }
            Ok(t) if std::time::Instant::now() >= deadline => return Err(t),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e.to_string()),
            _ => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

/// Whether anything accepts on `addr` (within a few seconds of it closing).
fn closes_soon(addr: &str) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::net::TcpStream::connect(addr).is_ok() {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    true
}

#[test]
fn published_ports_reach_the_container_and_close_with_it() {
    let u = User::new("net_ports");
    let _cleanup = Cleanup(&u);
    let img = u.pull("busybox");
    let port = free_port();
    let fixed_publish = format!("127.0.0.1:{port}:80");
    web(
        &u,
        &img,
        "web",
        "published",
        &["-p", &fixed_publish, "-p", "127.0.0.1::80"],
    );
    let fixed = format!("127.0.0.1:{port}");
    assert_eq!(http_get(&fixed).unwrap(), "published\n");
    // `port` lists both bindings; the second got a free port.
    let listed = u.burrow(&["port", "web"]).ok().stdout.clone();
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert_eq!(lines[0], format!("80/tcp -> {fixed}"));
    let other = lines[1].strip_prefix("80/tcp -> 127.0.0.1:").unwrap();
    assert_ne!(other, "0");
    assert_eq!(
        http_get(&format!("127.0.0.1:{other}")).unwrap(),
        "published\n"
    );
    let ps = u
        .burrow(&["ps", "--format", "{{.Ports}}"])
        .ok()
        .stdout
        .clone();
    assert_eq!(ps, format!("{fixed}->80/tcp, 127.0.0.1:{other}->80/tcp\n"));
    assert_eq!(
        u.field("web", "{{json .HostConfig.PortBindings}}"),
        format!(
            r#"{{"80/tcp":[{{"HostIp":"127.0.0.1","HostPort":"{port}"}},{{"HostIp":"127.0.0.1","HostPort":""}}]}}"#
        )
    );
    // The same host port twice: a clear error, exit 125.
    u.burrow(&[
        "run",
        "-d",
        "--name",
        "clash",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        &img,
        "sleep",
        "5",
    ])
    .code(125)
    .one_line_error()
    .stderr_has(&format!(
        "cannot publish port 80/tcp: cannot listen on 127.0.0.1:{port}"
    ));
    // As with Docker, the container exists (created) and holds its address until rm.
    u.burrow(&["rm", "clash"]).ok();
    // With the host's network there is nothing to publish: Docker's warning, and it runs.
    u.burrow(&["run", "--rm", "--network", "host", "-p", "80", &img, "true"])
        .ok()
        .stderr_has("published ports are discarded when using host network mode");
    u.burrow(&["port", "web", "81"])
        .code(125)
        .stderr_has("no public port '81/tcp' published for web");
    // rm -f closes the ports.
    u.burrow(&["rm", "-f", "web"]).ok();
    assert!(closes_soon(&fixed), "{fixed} stayed open after rm");

    // Ranges: pairwise, and a host range for one port takes its first free port.
    let base = free_ports(4);
    let (a, b, c, d) = (base, base + 1, base + 2, base + 3);
    let taken = std::net::UdpSocket::bind(("127.0.0.1", c)).unwrap();
    web(
        &u,
        &img,
        "ranged",
        "ranged",
        &[
            "-p",
            &format!("127.0.0.1:{a}-{b}:80-81"),
            "-p",
            &format!("127.0.0.1:{c}-{d}:80/udp"),
        ],
    );
    assert_eq!(
        u.burrow(&["port", "ranged"]).ok().stdout,
        format!("80/tcp -> 127.0.0.1:{a}\n81/tcp -> 127.0.0.1:{b}\n80/udp -> 127.0.0.1:{d}\n")
    );
    assert_eq!(http_get(&format!("127.0.0.1:{a}")).unwrap(), "ranged\n");
    drop(taken);
    u.burrow(&["rm", "-f", "ranged"]).ok();

    // A SIGKILLed monitor takes its ports with it too (the holder sees its connection end).
    web(&u, &img, "web2", "published", &["-p", &fixed_publish]);
    assert_eq!(http_get(&fixed).unwrap(), "published\n");
    let id = u.field("web2", "{{.Id}}");
    let o = std::process::Command::new("pgrep")
        .args(["-o", "-f", &format!("__monitor {id}")])
        .output()
        .unwrap();
    let monitor = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(!monitor.is_empty(), "no monitor");
    std::process::Command::new("kill")
        .args(["-KILL", &monitor])
        .status()
        .unwrap();
    assert!(
        closes_soon(&fixed),
        "{fixed} stayed open after the monitor was killed"
    );
    // The next command notices, and rm releases the address.
    u.burrow(&["rm", "-f", "web2"]).ok();
    let n = inspect(&u, "bridge");
    assert_eq!(n["Containers"], serde_json::json!({}), "{n:#}");
}

/// `run --rm --network NETWORK IMG sh -c SCRIPT`.
fn sh_on(u: &User, img: &str, network: &str, script: &str) -> common::Out {
    u.burrow(&["run", "--rm", "--network", network, img, "sh", "-c", script])
}

/// One try of `wget URL` from a new container on `network`; whether it got `expect`.
fn reaches(u: &User, img: &str, network: &str, url: &str, expect: &str) -> bool {
    let script = format!("timeout 3 wget -q -O - {url}; echo exit=$?");
    let o = sh_on(u, img, network, &script);
    o.ok().stdout == format!("{expect}exit=0\n")
}

#[test]
fn network_connect_and_disconnect_add_and_remove_a_containers_interface() {
    let u = User::new("net_connect");
    let _cleanup = Cleanup(&u);
    let img = u.pull("busybox");
    u.burrow(&["network", "create", "--subnet", "10.89.21.0/24", "front"])
        .ok();
    u.burrow(&["network", "create", "--subnet", "10.89.22.0/24", "back"])
        .ok();
    web(&u, &img, "web", "web", &["--network", "front"]);
    assert!(!reaches(&u, &img, "back", "http://web/", "web\n"));

    // Connected while running: eth1 on back at once, reachable there by name and alias.
    let o = u.burrow(&["network", "connect", "--alias", "api", "back", "web"]);
    assert_eq!(o.ok().stdout, "");
    // Serial allocation: .2 went to the probe above and is not handed out again.
    let ip = u.burrow(&["exec", "web", "ip", "-4", "-o", "addr", "show", "eth1"]);
    assert!(ip.ok().stdout.contains("inet 10.89.22.3/24"), "{ip:?}");
    assert!(fetch(&u, &img, "back", "http://api/").ok().stdout == "web\n");
    assert!(reaches(&u, &img, "back", "http://web/", "web\n"));
    let networks =
        serde_json::from_str::<Value>(&u.field("web", "{{json .NetworkSettings.Networks}}"))
            .unwrap();
    assert_eq!(networks["front"]["IPAddress"], "10.89.21.2", "{networks:#}");
    assert_eq!(networks["back"]["IPAddress"], "10.89.22.3", "{networks:#}");
    assert_eq!(networks["back"]["Aliases"], serde_json::json!(["api"]));
    let back = inspect(&u, "back");
    assert_eq!(back["Containers"].as_object().unwrap().len(), 1, "{back:#}");
    // Its /etc/hosts names the new address too (written in place: it is bind-mounted).
    let hostname = u.field("web", "{{.Config.Hostname}}");
    let own = |ip: &str| format!("{ip}\t{hostname}\n");
    let hosts = u
        .burrow(&["exec", "web", "cat", "/etc/hosts"])
        .ok()
        .stdout
        .clone();
    assert!(
        hosts.contains(&own("10.89.21.2")) && hosts.contains(&own("10.89.22.3")),
        "{hosts}"
    );

    // Refusals: twice, the host's network, a network it is not on.
    u.burrow(&["network", "connect", "back", "web"])
        .code(125)
        .one_line_error()
        .stderr_has("endpoint with name web already exists in network back");
    u.burrow(&["network", "connect", "host", "web"])
        .code(125)
        .stderr_has("connected to host network");
    u.burrow(&["network", "disconnect", "bridge", "web"])
        .code(125)
        .one_line_error()
        .stderr_has("container web is not connected to network bridge");

    // Disconnected: the interface and the address go; front still works.
    u.burrow(&["network", "disconnect", "back", "web"]).ok();
    u.burrow(&["exec", "web", "ip", "link", "show", "eth1"])
        .stderr_has("can't find device 'eth1'")
        .code(2);
    assert!(!reaches(&u, &img, "back", "http://10.89.22.3/", "web\n"));
    assert!(reaches(&u, &img, "front", "http://web/", "web\n"));
    assert_eq!(inspect(&u, "back")["Containers"], serde_json::json!({}));
    let networks =
        serde_json::from_str::<Value>(&u.field("web", "{{json .NetworkSettings.Networks}}"))
            .unwrap();
    assert!(networks.get("back").is_none(), "{networks:#}");
    let hosts = u
        .burrow(&["exec", "web", "cat", "/etc/hosts"])
        .ok()
        .stdout
        .clone();
    assert!(
        hosts.contains(&own("10.89.21.2")) && !hosts.contains("10.89.22.3"),
        "{hosts}"
    );

    // A stopped container gets the network when it starts (and keeps it across starts).
    u.burrow(&[
        "create",
        "--name",
        "later",
        "--network",
        "front",
        &img,
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth1",
    ])
    .ok();
    u.burrow(&["network", "connect", "--ip", "10.89.22.50", "back", "later"])
        .ok();
    for _ in 0..2 {
        let o = u.burrow(&["start", "-a", "later"]);
        assert!(o.ok().stdout.contains("inet 10.89.22.50/24"), "{o:?}");
    }
    // rm releases every address it held.
    u.burrow(&["rm", "later"]).ok();
    assert_eq!(inspect(&u, "back")["Containers"], serde_json::json!({}));
}

/// A static UDP server for the container (busybox has none): answers each datagram with
/// `SOURCE-IP PAYLOAD`. Built with gcc from this source into `dir`.
fn udp_echo_server(dir: &std::path::Path) -> std::path::PathBuf {
    let source = dir.join("udpecho.c");
    std::fs::write(
        &source,
        r#"#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[1]));
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
    for (;;) {
        char in[1500], out[1600];
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(s, in, sizeof in - 1, 0, (struct sockaddr *)&from, &len);
        if (n < 0) continue;
        in[n] = 0;
        int m = snprintf(out, sizeof out, "%s %s", inet_ntoa(from.sin_addr), in);
        sendto(s, out, m, 0, (struct sockaddr *)&from, len);
    }
}
"#,
    )
    .unwrap();
    let binary = dir.join("udpecho");
    let status = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .unwrap();
    assert!(status.success(), "gcc -static failed");
    binary
}

/// What `addr` answers to `payload` over UDP, asked again for a few seconds while the
/// server starts.
fn udp_ask(addr: &str, payload: &str) -> Result<String, String> {
    let client = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    client
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut buf = [0u8; 1600];
    loop {
        client.send_to(payload.as_bytes(), addr).unwrap();
        match client.recv(&mut buf) {
            Ok(n) => return Ok(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e.to_string()),
            Err(_) => {}
        }
    }
}

/// Runs `f` on a thread in the network namespace `ns` (made with `ip netns add`).
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

#[test]
fn published_ports_show_the_container_its_clients_address() {
    // A client on another host (a namespace behind bt-srcaddr, 10.231.8.1 on this side).
    let lan = TestHost::new("srcaddr", "10.231.8");
    let u = User::new("net_srcaddr");
    let _cleanup = Cleanup(&u);
    let img = u.pull("busybox");
    let (port, local) = (free_port(), free_port());
    // busybox httpd hands CGI scripts the client's address.
    let script = "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 80 -h /www";
    u.burrow(&[
        "run",
        "-d",
        "--name",
        "who",
        "-p",
        &format!("10.231.8.1:{port}:80"),
        "-p",
        &format!("127.0.0.1:{local}:80"),
        &img,
        "sh",
        "-c",
        script,
    ])
    .ok();
    // httpd listens on both families: it writes IPv4 clients as [::ffff:A.B.C.D].
    let client = |body: Result<String, String>| {
        let body = body.unwrap();
        body.trim()
            .trim_start_matches("[::ffff:")
            .trim_end_matches(']')
            .to_string()
    };
    let remote = format!("10.231.8.1:{port}");
    let seen = in_netns(&lan.ns, || http_get_path(&remote, "/cgi-bin/ip"));
    assert_eq!(client(seen), "10.231.8.2");
    // A client on the host's loopback cannot be spoken for: the gateway's address.
    let gateway = inspect(&u, "bridge")["IPAM"]["Config"][0]["Gateway"]
        .as_str()
        .unwrap()
        .to_string();
    let seen = http_get_path(&format!("127.0.0.1:{local}"), "/cgi-bin/ip");
    assert_eq!(client(seen), gateway);
}

#[test]
fn published_udp_ports_reach_the_container_and_close_with_it() {
    use std::io::Write;
    // A client on another host too (a namespace behind bt-udpsrc, 10.231.10.1 on this side).
    let lan = TestHost::new("udpsrc", "10.231.10");
    let u = User::new("net_udp");
    let _cleanup = Cleanup(&u);
    let img = u.pull("busybox");
    let dir = tempfile::tempdir().unwrap();
    let server = std::fs::read(udp_echo_server(dir.path())).unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let remote = format!("10.231.10.1:{}", free_port());
    // The server arrives on stdin: busybox has no UDP server and burrow no volumes yet.
    let mut run = u.command(&[
        "run",
        "-i",
        "--name",
        "udp",
        "-p",
        &format!("{addr}:5353/udp"),
        "-p",
        &format!("{remote}:5353/udp"),
        &img,
        "sh",
        "-c",
        "cat > /udpecho && chmod +x /udpecho && exec /udpecho 5353",
    ]);
    run.stdin(std::process::Stdio::piped());
    let mut child = run.spawn().unwrap();
    child.stdin.take().unwrap().write_all(&server).unwrap();
    // Each datagram reaches the container and its answer comes back. A client on the host's
    // loopback shows as the bridge's gateway (it cannot be spoken for); another host's client
    // keeps its address.
    let gateway = inspect(&u, "bridge")["IPAM"]["Config"][0]["Gateway"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(udp_ask(&addr, "one").unwrap(), format!("{gateway} one"));
    assert_eq!(udp_ask(&addr, "two").unwrap(), format!("{gateway} two"));
    let seen = in_netns(&lan.ns, || udp_ask(&remote, "three"));
    assert_eq!(seen.unwrap(), "10.231.10.2 three");
    assert_eq!(
        u.burrow(&["port", "udp"]).ok().stdout,
        format!("5353/udp -> {addr}\n5353/udp -> {remote}\n")
    );
    assert_eq!(
        u.burrow(&["port", "udp", "5353/udp"]).ok().stdout,
        format!("{addr}\n{remote}\n")
    );
    assert_eq!(
        u.burrow(&["ps", "--format", "{{.Ports}}"]).ok().stdout,
        format!("{addr}->5353/udp, {remote}->5353/udp\n")
    );
    // rm -f frees the host's port.
    u.burrow(&["rm", "-f", "udp"]).ok();
    let _ = child.wait();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::net::UdpSocket::bind(&addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{addr} stayed bound after rm"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn network_container_mode_shares_the_other_containers_namespace() {
    let u = User::new("net_shared");
    let _cleanup = Cleanup(&u);
    let img = u.pull("busybox");
    web(&u, &img, "web", "shared", &[]);
    let show = "hostname; ip -o link show eth0 | grep -o 'link/ether [0-9a-f:]*'; ip -o -4 addr show eth0 | grep -o 'inet [0-9./]*'";
    let theirs = u
        .burrow(&["exec", "web", "sh", "-c", show])
        .ok()
        .stdout
        .clone();
    assert_eq!(theirs.lines().count(), 3, "{theirs}");
    // Same hostname, MAC and address; the other's server answers on its loopback.
    let script = format!("{show}; wget -q -O - http://127.0.0.1/; ip -o link | wc -l");
    let o = sh_on(&u, &img, "container:web", &script);
    // lo and eth0: no interface of its own.
    assert_eq!(o.ok().stdout, format!("{theirs}shared\n2\n"), "{o:?}");
    assert_eq!(
        u.burrow(&[
            "create",
            "--name",
            "j",
            "--network",
            "container:web",
            &img,
            "true"
        ])
        .ok()
        .stdout
        .len(),
        65
    );
    assert_eq!(
        u.field("j", "{{.HostConfig.NetworkMode}}"),
        format!("container:{}", u.field("web", "{{.Id}}"))
    );
    u.burrow(&[
        "create",
        "--network",
        "container:web",
        "-p",
        "80",
        &img,
        "true",
    ])
    .code(125)
    .one_line_error()
    .stderr_has("conflicting options: port publishing and the network mode");
    u.burrow(&["stop", "-t", "0", "web"]).ok();
    u.burrow(&["start", "j"])
        .code(1)
        .stderr_has("cannot join network of a non running container: web");
}

#[test]
fn macvlan_as_root_puts_containers_on_the_parents_lan() {
    // burrow runs as root in a namespace of the test's whose bt-mvlan (one end of a veth
    // pair) is the parent; the other end is another device on that LAN, serving HTTP.
    let lan = TestHost::on_lan("mvlan", "192.168.77");
    let mut u = User::root("net_macvlan");
    let img = u.pull("busybox");
    u.netns = lan.lan_host.clone();
    let _cleanup = Cleanup(&u);
    let create = |name: &str, parent: &str| {
        u.burrow(&[
            "network",
            "create",
            "-d",
            "macvlan",
            "--subnet",
            "192.168.77.0/24",
            "--gateway",
            "192.168.77.1",
            "--ip-range",
            "192.168.77.128/25",
            "-o",
            &format!("parent={parent}"),
            name,
        ])
    };
    create("nowhere", "eth9")
        .code(125)
        .stderr_has("parent interface eth9 was not found on this host");
    create("lan", "bt-mvlan").ok();
    assert_eq!(
        u.burrow(&[
            "network",
            "inspect",
            "--format",
            "{{.Driver}} {{.Options.parent}}",
            "lan"
        ])
        .ok()
        .stdout,
        "macvlan bt-mvlan\n"
    );
    // The container is on the LAN with the first address of the range, and reaches the
    // other device there.
    let o = u.burrow(&[
        "run",
        "--rm",
        "--network",
        "lan",
        &img,
        "sh",
        "-c",
        "ip -o -4 addr show eth0 | grep -o 'inet [0-9./]*'; wget -q -O - http://192.168.77.2:8080/",
    ]);
    assert_eq!(o.ok().stdout, "inet 192.168.77.128/24\npage-from-mvlan\n");
    // The other device reaches a container at its own address; -p means nothing there.
    let o = u.burrow(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "lan",
        "--ip",
        "192.168.77.200",
        "-p",
        "80",
        &img,
        "sh",
        "-c",
        "mkdir /www && echo on-the-lan > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    o.ok()
        .stderr_has("published ports are discarded on macvlan networks");
    let from_lan = |url: &str| {
        std::process::Command::new("ip")
            .args([
                "netns", "exec", &lan.ns, "busybox", "wget", "-q", "-O", "-", url,
            ])
            .output()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let page = loop {
        let o = from_lan("http://192.168.77.200/");
        if o.status.success() || std::time::Instant::now() > deadline {
            break String::from_utf8_lossy(&o.stdout).into_owned();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(page, "on-the-lan\n");
    assert_eq!(
        u.field("web", "{{.NetworkSettings.Networks.lan.IPAddress}}"),
        "192.168.77.200"
    );
    // rm takes the container off the LAN and gives the address back; burrow's namespace
    // keeps only its own interfaces.
    u.burrow(&["rm", "-f", "web"]).ok();
    assert!(!from_lan("http://192.168.77.200/").status.success());
    assert_eq!(
        u.burrow(&[
            "network",
            "inspect",
            "--format",
            "{{json .Containers}}",
            "lan"
        ])
        .ok()
        .stdout,
        "{}\n"
    );
    let links = std::process::Command::new("ip")
        .args(["-n", lan.lan_host.as_deref().unwrap(), "-o", "link", "show"])
        .output()
        .unwrap();
    let names: Vec<String> = String::from_utf8_lossy(&links.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .collect();
    assert_eq!(names, ["lo", "bt-mvlan"], "{links:?}");
}

#[test]
fn containers_that_lost_their_network_with_the_holder_are_reported_and_a_restart_mends_them() {
    let u = User::new("net_lost");
    let _cleanup = Cleanup(&u);
    let img = u.pull("busybox");
    u.burrow(&["run", "-d", "--name", "kept", &img, "sleep", "300"])
        .ok();
    let eth0 = || u.burrow(&["exec", "kept", "ip", "-o", "-4", "addr", "show", "eth0"]);
    eth0().ok();
    let ps = u.burrow(&["ps"]);
    assert!(!ps.ok().stderr.contains("lost"), "{ps:?}");
    // The holder goes, its namespace with it: the container runs on without eth0.
    u.stop_holder();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while eth0().code == 0 {
        assert!(std::time::Instant::now() < deadline, "eth0 stayed");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    u.burrow(&["ps"]).ok().stderr_has(
        "kept lost its network when the network holder ended; restart it: burrow restart kept",
    );
    u.burrow(&["restart", "-t", "1", "kept"]).ok();
    eth0().ok();
    let ps = u.burrow(&["ps"]);
    assert!(!ps.ok().stderr.contains("lost"), "{ps:?}");
}

/// Builds the wasm crates of `manifest` into `target` (under /var/tmp/burrow-test) and copies
/// `file` where the test user can read it; its path.
fn built_plugin(u: &User, manifest: &str, target: &str, file: &str) -> String {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::path::Path::new("/var/tmp/burrow-test").join(target);
    let built = common::build_wasm(&repo.join(manifest), &target)
        .unwrap_or_else(|e| panic!("{manifest} builds with one cargo command: {e}"));
    let copy = u.home.join(file);
    std::fs::copy(built.join(file), &copy).unwrap();
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    copy.display().to_string()
}

/// The interfaces in the user's network holder's namespace, and their IPv4 addresses (as
/// `ip -o -4 addr` lists them).
fn holder_links(u: &User) -> (Vec<String>, String) {
    let names = in_holder(u, &["ip", "-o", "link"])
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|n| n.trim_end_matches(':').to_string())
        .collect();
    (names, in_holder(u, &["ip", "-o", "-4", "addr"]))
}

#[test]
fn the_example_network_plugin_is_installed_and_connects_containers() {
    let u = User::new("net_plugin");
    let _cleanup = Cleanup(&u);
    let img = u.pull("busybox");
    let wasm = built_plugin(
        &u,
        "examples/net-plugin/Cargo.toml",
        "example-net-plugin-target",
        "net_lan.wasm",
    );
    // A network driver asks for nothing: no grant, no question.
    let o = u.burrow(&["plugin", "install", &wasm]);
    assert_eq!(o.ok().stdout, "Installed plugin lan\n");
    let o = u.burrow(&["plugin", "inspect", "lan"]);
    let v: Value = serde_json::from_str(&o.ok().stdout).unwrap();
    assert_eq!(v[0]["kind"], "network", "{v}");
    // The plugin's own refusals, verbatim.
    u.burrow(&["network", "create", "-d", "lan", "nosubnet"])
        .code(125)
        .one_line_error()
        .stderr_has("the lan driver needs exactly one IPv4 --subnet");
    u.burrow(&[
        "network",
        "create",
        "-d",
        "lan",
        "--subnet",
        "10.89.40.0/24",
        "-o",
        "mtu=1300",
        "office",
    ])
    .ok();
    let n = inspect(&u, "office");
    assert_eq!(n["Driver"], "lan", "{n}");
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.89.40.0/24", "{n}");
    // Its plan carried out: the MTU it chose, the address the host handed out, the other
    // container by name (the built-in DNS), a published port.
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    web(
        &u,
        &img,
        "desk",
        "page-from-lan",
        &["--network", "office", "-p", &publish],
    );
    let o = sh_on(
        &u,
        &img,
        "office",
        "cat /sys/class/net/eth0/mtu; ip -4 -o addr show eth0 | grep -o 'inet [0-9./]*'; wget -q -O - http://desk/",
    );
    assert_eq!(o.ok().stdout, "1300\ninet 10.89.40.3/24\npage-from-lan\n");
    assert_eq!(
        http_get(&format!("127.0.0.1:{port}")).unwrap(),
        "page-from-lan\n"
    );
    // In use: it stays; a network driver is no log driver.
    u.burrow(&["plugin", "rm", "lan"])
        .code(125)
        .one_line_error()
        .stderr_has("in use by network office");
    u.burrow(&["run", "--rm", "--log-driver", "lan", &img, "true"])
        .code(125)
        .one_line_error()
        .stderr_has("is a network driver, not a log driver");
    u.burrow(&["rm", "-f", "desk"]).ok();
    u.burrow(&["network", "rm", "office"]).ok();
    u.burrow(&["plugin", "rm", "lan"]).ok();
    u.burrow(&[
        "network",
        "create",
        "-d",
        "lan",
        "--subnet",
        "10.89.40.0/24",
        "office",
    ])
    .code(125)
    .one_line_error()
    .stderr_has("plugin \"lan\" not found");
}

#[test]
fn misbehaving_network_plugins_fail_their_call_and_change_nothing() {
    let u = User::new("net_plugin_bad");
    let _cleanup = Cleanup(&u);
    let img = u.pull("busybox");
    let wasm = built_plugin(
        &u,
        "tests/plugins/Cargo.toml",
        "hostile-plugins-target",
        "hostile_netbad.wasm",
    );
    u.burrow(&["plugin", "install", &wasm]).ok();
    // The holder's own interfaces are not a network's to name.
    u.burrow(&[
        "network",
        "create",
        "-d",
        "netbad",
        "-o",
        "do=tapname",
        "--subnet",
        "10.89.41.0/24",
        "x",
    ])
    .code(125)
    .one_line_error()
    .stderr_has("chose the interface name \"tap0\"");
    u.burrow(&["run", "--rm", &img, "true"]).ok();
    let (_, addresses) = holder_links(&u);
    for (i, (what, says)) in [
        ("spin", "did not finish setup within 5 s"),
        ("trap", "crashed in setup"),
        (
            "escape",
            "planned something burrow refuses: a change to the host interface \"tap0\"",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let subnet = format!("10.89.{}.0/24", 42 + i);
        let opt = format!("do={what}");
        u.burrow(&[
            "network", "create", "-d", "netbad", "--subnet", &subnet, "-o", &opt, what,
        ])
        .ok();
        u.burrow(&["run", "--rm", "--network", what, &img, "true"])
            .code(125)
            .one_line_error()
            .stderr_has(says);
        // No bridge or veth of the plan's, no address on the holder's own interfaces. (The
        // veth of the container run above may still be on its way out.)
        let (links, now) = holder_links(&u);
        assert!(
            !links
                .iter()
                .any(|l| l.starts_with("br-") || l.starts_with("vethbad")),
            "{what} left a link in the holder: {links:?}"
        );
        assert_eq!(now, addresses, "{what} left an address in the holder");
    }
    // Nothing runs, and the holder carries on.
    assert_eq!(u.burrow(&["ps", "-q"]).ok().stdout, "");
    let o = u.burrow(&[
        "run", "--rm", &img, "ip", "-4", "-o", "addr", "show", "eth0",
    ]);
    assert!(o.ok().stdout.contains("scope global eth0"), "{o:?}");
}
