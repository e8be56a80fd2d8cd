//! Merging an image's configuration with `run`/`create` options, exactly as Docker does.
//! Pure data in, data out.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::EngineError;
use super::networks::NetworkRefusal;
use crate::monitor::health::{DockerHealthConfig, HealthFlags, Healthcheck};
use crate::monitor::{RestartPolicy, parse_signal};

/// The default PATH Docker gives a container whose image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The part of an OCI/Docker image configuration `run` reads (`config` in the JSON).
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ImageRunConfig {
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub healthcheck: Option<DockerHealthConfig>,
    #[serde(default)]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
    /// `EXPOSE`d ports, `"80/tcp": {}`: what `-P` publishes.
    #[serde(default)]
    pub exposed_ports: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

/// What the user asked for on the command line.
#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    pub image: String,
    pub command: Vec<String>,
    pub name: Option<String>,
    /// `-e` values in order: `KEY=VALUE`, or `KEY` to copy from burrow's environment.
    pub env: Vec<String>,
    pub env_files: Vec<PathBuf>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// `Some("")` clears the image's entrypoint.
    pub entrypoint: Option<String>,
    pub hostname: Option<String>,
    pub read_only: bool,
    pub network: Option<String>,
    pub auto_remove: bool,
    pub tty: bool,
    pub interactive: bool,
    pub tls_verify: Option<bool>,
    pub platform: Option<String>,
    pub restart: Option<String>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<u32>,
    pub init: bool,
    pub health: HealthFlags,
    /// `--label KEY[=VALUE]`, in order.
    pub labels: Vec<String>,
    /// `--log-driver` and `--log-opt`.
    pub log: super::logconfig::LogConfig,
    /// `--add-host`, `--dns`, `--dns-search`, `--dns-option`.
    pub dns: DnsConfig,
    /// `--ip`, `--mac-address`.
    pub ip: Option<String>,
    pub mac_address: Option<String>,
    /// `-p`, as given.
    pub publish: Vec<String>,
    /// `-P`: publish the image's exposed ports on free host ports.
    pub publish_all: bool,
}

/// What goes into the container's /etc/hosts and /etc/resolv.conf beyond the defaults.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct DnsConfig {
    /// `HOST:IP` entries, checked, in order.
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    /// `--network-alias`: more names the network's built-in DNS answers for the container.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--link CONTAINER[:ALIAS]`, as given: /etc/hosts names the other container by ALIAS.
    #[serde(default)]
    pub links: Vec<String>,
    #[serde(default)]
    pub servers: Vec<String>,
    #[serde(default)]
    pub search: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

impl DnsConfig {
    /// Docker's checks: `--add-host HOST:IP` (`host-gateway` only where it means something)
    /// and `--dns IP`.
    pub fn check(&self, network: &str) -> Result<(), EngineError> {
        for entry in &self.extra_hosts {
            let bad = || NetworkRefusal::BadAddHost {
                entry: entry.clone(),
            };
            let (host, ip) = entry.split_once(':').ok_or_else(bad)?;
            if host.is_empty() || host.contains(char::is_whitespace) {
                return Err(bad().into());
            }
            if ip == "host-gateway" {
                if network == "none" {
                    return Err(NetworkRefusal::HostGatewayNeedsNetwork {
                        entry: entry.clone(),
                    }
                    .into());
                }
            } else if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(NetworkRefusal::BadAddHostIp { ip: ip.to_string() }.into());
            }
        }
        for server in &self.servers {
            if server.parse::<std::net::IpAddr>().is_err() {
                return Err(NetworkRefusal::BadDns {
                    server: server.clone(),
                }
                .into());
            }
        }
        Ok(())
    }

    /// The container's /etc/hosts: `base`, then the extra hosts as `IP\tHOST`.
    /// `host_gateway` is what `host-gateway` stands for on the container's network.
    pub fn hosts(&self, base: &str, host_gateway: &str) -> String {
        let mut out = base.to_string();
        for entry in &self.extra_hosts {
            if let Some((host, ip)) = entry.split_once(':') {
                let ip = if ip == "host-gateway" {
                    host_gateway
                } else {
                    ip
                };
                out.push_str(&format!("{ip}\t{host}\n"));
            }
        }
        out
    }

    /// Whether an `--add-host` entry asks for the host's address.
    pub fn wants_host_gateway(&self) -> bool {
        self.extra_hosts
            .iter()
            .any(|e| e.ends_with(":host-gateway"))
    }

    /// The container's /etc/resolv.conf: the host's, with what the flags replace (Docker's
    /// order: nameservers, search, options; `--dns-search .` means none).
    pub fn resolv_conf(&self, host: &str) -> String {
        if self.servers.is_empty() && self.search.is_empty() && self.options.is_empty() {
            return host.to_string();
        }
        let from_host = |key: &str| -> Vec<String> {
            host.lines()
                .filter_map(|l| l.trim().strip_prefix(key))
                .filter(|rest| rest.starts_with(char::is_whitespace))
                .flat_map(|rest| {
                    rest.split_whitespace()
                        .map(String::from)
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let servers = if self.servers.is_empty() {
            from_host("nameserver")
        } else {
            self.servers.clone()
        };
        let search = if self.search.is_empty() {
            from_host("search")
        } else {
            self.search.clone()
        };
        let options = if self.options.is_empty() {
            from_host("options")
        } else {
            self.options.clone()
        };
        let mut out = String::new();
        for s in &servers {
            out.push_str(&format!("nameserver {s}\n"));
        }
        let search = search.join(" ");
        if !search.trim().is_empty() && search.trim() != "." {
            out.push_str(&format!("search {search}\n"));
        }
        if !options.is_empty() {
            out.push_str(&format!("options {}\n", options.join(" ")));
        }
        out
    }
}

/// A container's resolved configuration, stored with it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub hostname: String,
    pub network: String,
    pub read_only: bool,
    pub auto_remove: bool,
    pub tty: bool,
    pub interactive: bool,
    pub storage_driver: String,
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// The signal `stop` sends first: --stop-signal, else the image's StopSignal, else SIGTERM.
    #[serde(default = "default_stop_signal")]
    pub stop_signal: String,
    /// Seconds `stop` waits before SIGKILL when `-t` is not given (Docker: 10).
    #[serde(default)]
    pub stop_timeout: Option<u32>,
    #[serde(default)]
    pub init: bool,
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    /// The image's labels with --label on top.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub log: super::logconfig::LogConfig,
    #[serde(default)]
    pub dns: DnsConfig,
    /// Published ports (`-p`, `-P`); the host ports actually bound are in the runtime dir.
    #[serde(default)]
    pub ports: Vec<crate::network::ports::PortBinding>,
    /// `--ip`: the address asked for on the container's network.
    #[serde(default)]
    pub ip: Option<String>,
    /// `--mac-address`, checked: six hex pairs, lower case.
    #[serde(default)]
    pub mac_address: Option<String>,
}

fn default_stop_signal() -> String {
    "SIGTERM".into()
}

impl ContainerConfig {
    /// argv of the container's first process.
    pub fn args(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }
}

/// `--network`: `none`, `host`, or a network's name or id (looked up at create; `default`
/// is Docker's other name for `bridge`, the default).
pub fn parse_network(value: Option<&str>) -> Result<String, EngineError> {
    match value.unwrap_or("bridge") {
        "default" => Ok("bridge".into()),
        "container:" => Err(NetworkRefusal::ContainerModeNeedsName.into()),
        "" => Err(NetworkRefusal::NetworkNeedsValue.into()),
        other => Ok(other.to_string()),
    }
}

/// `--mac-address`: Docker's form, six hex pairs separated by ':' (a multicast address is
/// refused, as the kernel would).
fn check_mac(mac: &str) -> Result<String, EngineError> {
    let bytes: Vec<Option<u8>> = mac
        .split(':')
        .map(|b| {
            (b.len() == 2)
                .then(|| u8::from_str_radix(b, 16).ok())
                .flatten()
        })
        .collect();
    match bytes.as_slice() {
        [Some(first), rest @ ..] if rest.len() == 5 && rest.iter().all(Option::is_some) => {
            if first & 1 == 1 {
                return Err(NetworkRefusal::MulticastMac {
                    mac: mac.to_string(),
                }
                .into());
            }
            Ok(mac.to_ascii_lowercase())
        }
        _ => Err(NetworkRefusal::BadMac {
            mac: mac.to_string(),
        }
        .into()),
    }
}

/// `-p` and `-P` (the image's EXPOSEd ports on free host ports), checked. Docker drops
/// them with `--network host`; with `none` there is nothing to forward to.
fn published_ports(
    image: &ImageRunConfig,
    opts: &CreateOptions,
    network: &str,
) -> Result<Vec<crate::network::ports::PortBinding>, EngineError> {
    use crate::network::ports::{PortBinding, parse};
    let mut ports = Vec::new();
    for p in &opts.publish {
        ports.extend(parse(p).map_err(NetworkRefusal::BadPort)?);
    }
    if opts.publish_all {
        for key in image.exposed_ports.iter().flatten().map(|(k, _)| k) {
            let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            let proto = proto.to_ascii_lowercase();
            let taken = ports
                .iter()
                .any(|p| p.container_port == port && p.proto == proto);
            if matches!(proto.as_str(), "tcp" | "udp") && !taken {
                ports.push(PortBinding {
                    host_ip: None,
                    host_port: 0,
                    host_port_end: None,
                    container_port: port,
                    proto,
                });
            }
        }
    }
    match network {
        _ if ports.is_empty() => Ok(ports),
        "host" => Ok(vec![]),
        "none" => Err(NetworkRefusal::PortsNeedNetwork.into()),
        _ => Ok(ports),
    }
}

/// Merges the image configuration and the options into a container configuration.
/// `lookup_env` reads burrow's own environment for `-e KEY` without a value.
pub fn merge(
    image: &ImageRunConfig,
    opts: &CreateOptions,
    id: &str,
    host_hostname: &str,
    storage_driver: &str,
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> Result<ContainerConfig, EngineError> {
    let network = parse_network(opts.network.as_deref())?;
    let restart_policy: RestartPolicy = match &opts.restart {
        Some(r) => r.parse()?,
        None => RestartPolicy::No,
    };
    if opts.auto_remove && restart_policy != RestartPolicy::No {
        return Err(EngineError::RestartWithRm);
    }
    let stop_signal = opts
        .stop_signal
        .clone()
        .or_else(|| image.stop_signal.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(default_stop_signal);
    if parse_signal(&stop_signal).is_none() {
        return Err(EngineError::BadSignal(stop_signal));
    }

    // Docker: an explicit --entrypoint drops the image's Cmd; command arguments replace Cmd.
    let (entrypoint, image_cmd) = match &opts.entrypoint {
        Some(e) if e.is_empty() => (Vec::new(), Vec::new()),
        Some(e) => (vec![e.clone()], Vec::new()),
        None => (
            image.entrypoint.clone().unwrap_or_default(),
            image.cmd.clone().unwrap_or_default(),
        ),
    };
    let cmd = if opts.command.is_empty() {
        image_cmd
    } else {
        opts.command.clone()
    };
    if entrypoint.is_empty() && cmd.is_empty() {
        return Err(EngineError::NoCommand(opts.image.clone()));
    }

    let working_dir = match opts.workdir.as_deref().filter(|w| !w.is_empty()) {
        Some(w) if !w.starts_with('/') => return Err(EngineError::RelativeWorkdir(w.into())),
        Some(w) => w.to_string(),
        None => image
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
    };

    opts.dns.check(&network)?;
    if network.starts_with("container:") {
        // Docker's refusals: these belong to the other container's network.
        let conflicts = [
            (opts.hostname.is_some(), "hostname"),
            (
                !opts.publish.is_empty() || opts.publish_all,
                "port publishing",
            ),
            (!opts.dns.servers.is_empty(), "dns"),
            (
                !opts.dns.extra_hosts.is_empty(),
                "custom host-to-IP mapping",
            ),
            (!opts.dns.aliases.is_empty(), "network aliases"),
        ];
        if let Some((_, what)) = conflicts.iter().find(|(given, _)| *given) {
            return Err(NetworkRefusal::ContainerModeConflict { what }.into());
        }
    }
    let hostname = match (&opts.hostname, network.as_str()) {
        (Some(h), _) => {
            validate_hostname(h)?;
            h.clone()
        }
        (None, "host") => host_hostname.to_string(),
        (None, _) => id.chars().take(12).collect(),
    };

    let mut env = EnvList::default();
    for kv in image.env.iter().flatten() {
        env.set(kv);
    }
    for file in &opts.env_files {
        for kv in read_env_file(file, lookup_env)? {
            env.set(&kv);
        }
    }
    env.apply(&opts.env, lookup_env)?;
    if env.get("PATH").is_none() {
        env.set(&format!("PATH={DEFAULT_PATH}"));
    }
    env.set_default(&format!("HOSTNAME={hostname}"));
    if opts.tty {
        env.set_default("TERM=xterm");
    }

    let ports = published_ports(image, opts, &network)?;
    Ok(ContainerConfig {
        entrypoint,
        cmd,
        env: env.0,
        working_dir,
        user: opts
            .user
            .clone()
            .or_else(|| image.user.clone())
            .unwrap_or_default(),
        hostname,
        network,
        read_only: opts.read_only,
        auto_remove: opts.auto_remove,
        tty: opts.tty,
        interactive: opts.interactive,
        storage_driver: storage_driver.to_string(),
        restart_policy,
        stop_signal,
        stop_timeout: opts.stop_timeout,
        init: opts.init,
        healthcheck: crate::monitor::health::resolve(image.healthcheck.as_ref(), &opts.health)?,
        labels: image
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .chain(opts.labels.iter().map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.clone(), String::new()),
            }))
            .collect(),
        log: opts.log.clone(),
        dns: opts.dns.clone(),
        ports,
        ip: opts.ip.clone(),
        mac_address: opts.mac_address.as_deref().map(check_mac).transpose()?,
    })
}

/// `base` with `-e` items applied, as `run` applies them: KEY=VALUE replaces KEY in place,
/// KEY alone copies it from `lookup_env` (and is dropped when that has none).
pub fn apply_env(
    base: &[String],
    items: &[String],
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, EngineError> {
    let mut env = EnvList(base.to_vec());
    env.apply(items, lookup_env)?;
    Ok(env.0)
}

/// KEY=VALUE list where a later value replaces an earlier one in place.
#[derive(Default)]
struct EnvList(Vec<String>);

impl EnvList {
    fn key(kv: &str) -> &str {
        kv.split_once('=').map_or(kv, |(k, _)| k)
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|kv| Self::key(kv) == key)
            .map(|kv| kv.split_once('=').map_or("", |(_, v)| v))
    }
    fn set(&mut self, kv: &str) {
        let key = Self::key(kv);
        match self.0.iter_mut().find(|e| Self::key(e) == key) {
            Some(slot) => *slot = kv.to_string(),
            None => self.0.push(kv.to_string()),
        }
    }
    fn apply(
        &mut self,
        items: &[String],
        lookup_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), EngineError> {
        for item in items {
            if let Some(kv) = expand_env_item(item, lookup_env)? {
                self.set(&kv);
            }
        }
        Ok(())
    }

    fn set_default(&mut self, kv: &str) {
        if self.get(Self::key(kv)).is_none() {
            self.0.push(kv.to_string());
        }
    }
}

fn expand_env_item(
    item: &str,
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, EngineError> {
    let key = EnvList::key(item);
    if key.is_empty() {
        return Err(EngineError::BadEnv(item.to_string()));
    }
    if item.contains('=') {
        return Ok(Some(item.to_string()));
    }
    Ok(lookup_env(key).map(|v| format!("{key}={v}")))
}

/// Docker's --env-file format: KEY=VALUE lines, `KEY` alone copies from the environment,
/// blank lines and lines starting with '#' are skipped; values are taken literally.
pub fn read_env_file(
    path: &Path,
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, EngineError> {
    let text = std::fs::read_to_string(path).map_err(|source| EngineError::Io {
        what: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let key = EnvList::key(trimmed);
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(EngineError::BadEnvFile {
                path: path.to_path_buf(),
                line: n + 1,
                key: key.to_string(),
            });
        }
        if let Some(kv) = expand_env_item(trimmed, lookup_env)? {
            out.push(kv);
        }
    }
    Ok(out)
}

fn validate_hostname(h: &str) -> Result<(), EngineError> {
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(EngineError::BadHostname(h.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(hosts: &[&str], servers: &[&str], search: &[&str], options: &[&str]) -> DnsConfig {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        DnsConfig {
            extra_hosts: v(hosts),
            servers: v(servers),
            search: v(search),
            options: v(options),
            ..Default::default()
        }
    }

    #[test]
    fn dns_flags_are_checked_and_written_as_docker_does() {
        let host = "# from the host\nnameserver 192.0.2.1\nsearch corp.example\noptions ndots:2\n";
        assert_eq!(dns(&[], &[], &[], &[]).resolv_conf(host), host);
        assert_eq!(
            dns(&[], &["10.0.0.53", "10.0.0.54"], &[], &[]).resolv_conf(host),
            "nameserver 10.0.0.53\nnameserver 10.0.0.54\nsearch corp.example\noptions ndots:2\n"
        );
        assert_eq!(
            dns(&[], &[], &["."], &["timeout:1"]).resolv_conf(host),
            "nameserver 192.0.2.1\noptions timeout:1\n"
        );
        let d = dns(&["db:10.1.2.3", "v6:fe80::1"], &[], &[], &[]);
        assert_eq!(d.check("none").map_err(|e| e.to_string()), Ok(()));
        assert_eq!(
            d.hosts("127.0.0.1\tlocalhost\n", "127.0.0.1"),
            "127.0.0.1\tlocalhost\n10.1.2.3\tdb\nfe80::1\tv6\n"
        );
        let err = |d: DnsConfig, net: &str| d.check(net).unwrap_err().to_string();
        assert_eq!(
            err(dns(&["db"], &[], &[], &[]), "none"),
            "invalid argument \"db\" for \"--add-host\" flag: use HOST:IP, e.g. db:10.0.0.5"
        );
        assert_eq!(
            err(dns(&["db:10.1.2"], &[], &[], &[]), "none"),
            "invalid IP address in add-host: \"10.1.2\""
        );
        assert!(err(dns(&["gw:host-gateway"], &[], &[], &[]), "none").contains("--network host"));
        assert_eq!(
            dns(&["gw:host-gateway"], &[], &[], &[]).hosts("", "10.0.2.2"),
            "10.0.2.2\tgw\n"
        );
        assert_eq!(
            err(dns(&[], &["dns.example"], &[], &[]), "none"),
            "invalid argument \"dns.example\" for \"--dns\" flag: dns.example is not an ip address"
        );
    }

    fn img(entry: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageRunConfig {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        ImageRunConfig {
            env: Some(vec!["PATH=/bin".into(), "FOO=image".into()]),
            entrypoint: entry.map(v),
            cmd: cmd.map(v),
            working_dir: Some("/srv".into()),
            user: Some("app".into()),
            stop_signal: None,
            healthcheck: None,
            labels: None,
            exposed_ports: Some(
                [("80/tcp", ()), ("53/udp", ()), ("8080/tcp", ())]
                    .into_iter()
                    .map(|(k, ())| (k.to_string(), serde_json::json!({})))
                    .collect(),
            ),
        }
    }

    #[test]
    fn published_ports_from_p_and_capital_p() {
        let i = img(None, Some(&["true"]));
        let mut o = opts(&[]);
        o.publish = vec!["8080:80".into()];
        o.publish_all = true;
        let ports = published_ports(&i, &o, "bridge").unwrap();
        let seen: Vec<(u16, u16, &str)> = ports
            .iter()
            .map(|p| (p.host_port, p.container_port, p.proto.as_str()))
            .collect();
        // -p 8080:80 wins over -P's 80; 53/udp and 8080 get free ports.
        assert_eq!(seen, [(8080, 80, "tcp"), (0, 53, "udp"), (0, 8080, "tcp")]);
        assert_eq!(published_ports(&i, &o, "host").unwrap(), vec![]);
        let err = published_ports(&i, &o, "none").unwrap_err().to_string();
        assert!(err.contains("published ports need a network"), "{err}");
        o.publish = vec!["80/sctp".into()];
        let err = published_ports(&i, &o, "bridge").unwrap_err().to_string();
        assert!(err.contains("sctp ports cannot be published"), "{err}");
    }

    fn opts(command: &[&str]) -> CreateOptions {
        CreateOptions {
            image: "img".into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn run(image: &ImageRunConfig, o: &CreateOptions) -> ContainerConfig {
        merge(image, o, "0123456789abcdef", "hosty", "vfs", &no_env).unwrap()
    }

    #[test]
    fn entrypoint_and_cmd_merge_like_docker() {
        let i = img(Some(&["/bin/echo", "ep"]), Some(&["c1", "c2"]));
        assert_eq!(run(&i, &opts(&[])).args(), ["/bin/echo", "ep", "c1", "c2"]);
        assert_eq!(run(&i, &opts(&["x"])).args(), ["/bin/echo", "ep", "x"]);
        let mut o = opts(&[]);
        o.entrypoint = Some("/bin/true".into());
        assert_eq!(run(&i, &o).args(), ["/bin/true"], "--entrypoint drops Cmd");
        o.command = vec!["a".into()];
        assert_eq!(run(&i, &o).args(), ["/bin/true", "a"]);
        o.entrypoint = Some(String::new());
        assert_eq!(run(&i, &o).args(), ["a"], "--entrypoint '' clears it");
        let none = img(None, None);
        assert!(matches!(
            merge(&none, &opts(&[]), "id", "h", "vfs", &no_env),
            Err(EngineError::NoCommand(_))
        ));
    }

    #[test]
    fn env_layers_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("e.env");
        std::fs::write(&f, "# c\n\nFOO=file\nBAR=from file\nFROMHOST\n").unwrap();
        let mut o = opts(&["sh"]);
        o.env_files = vec![f];
        o.env = vec!["BAR=cli".into(), "MISSING".into(), "HOSTVAR".into()];
        o.tty = true;
        let host = |k: &str| match k {
            "HOSTVAR" => Some("hv".to_string()),
            "FROMHOST" => Some("fh".to_string()),
            _ => None,
        };
        let c = merge(&img(None, None), &o, "0123456789abcdef", "h", "vfs", &host).unwrap();
        assert_eq!(
            c.env,
            [
                "PATH=/bin",
                "FOO=file",
                "BAR=cli",
                "FROMHOST=fh",
                "HOSTVAR=hv",
                "HOSTNAME=0123456789ab",
                "TERM=xterm"
            ]
        );
        assert_eq!(c.working_dir, "/srv");
        assert_eq!(c.user, "app");
    }

    #[test]
    fn default_path_and_overrides() {
        let mut i = img(None, Some(&["sh"]));
        i.env = None;
        i.working_dir = None;
        i.user = None;
        let mut o = opts(&[]);
        let c = run(&i, &o);
        assert_eq!(c.env[0], format!("PATH={DEFAULT_PATH}"));
        assert_eq!(c.working_dir, "/");
        assert_eq!(c.user, "");
        assert_eq!(c.network, "bridge");
        o.workdir = Some("rel".into());
        assert!(matches!(
            merge(&i, &o, "id", "h", "vfs", &no_env),
            Err(EngineError::RelativeWorkdir(_))
        ));
        o.workdir = None;
        o.network = Some("host".into());
        assert_eq!(run(&i, &o).hostname, "hosty");
        o.network = Some("default".into());
        assert_eq!(run(&i, &o).network, "bridge");
        o.network = Some("container:web".into());
        assert_eq!(run(&i, &o).network, "container:web");
        o.hostname = Some("x".into());
        assert!(matches!(
            merge(&i, &o, "id", "h", "vfs", &no_env),
            Err(EngineError::Network(
                NetworkRefusal::ContainerModeConflict { what: "hostname" }
            ))
        ));
        o.hostname = None;
        o.network = None;
        o.hostname = Some("bad_name".into());
        assert!(matches!(
            merge(&i, &o, "id", "h", "vfs", &no_env),
            Err(EngineError::BadHostname(_))
        ));
    }

    #[test]
    fn env_file_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.env");
        std::fs::write(&f, "OK=1\nBAD KEY=2\n").unwrap();
        let err = read_env_file(&f, &no_env).unwrap_err();
        assert!(
            matches!(err, EngineError::BadEnvFile { line: 2, .. }),
            "{err}"
        );
    }
}
