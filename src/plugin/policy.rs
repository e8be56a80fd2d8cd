//! What one instance may reach: the plugin's needs ∩ the grants ∩ the container's options.
//!
//! Address rule for `endpoints`: an address is allowed when, after normalisation (lowercase
//! host, no brackets or trailing dot, canonical IP text), a log option value names the same
//! host and port, or the same unix path. The transport is not compared: the user named the
//! destination, the driver picks how to speak to it (`syslog-address=tcp+tls://h:6514` lets
//! the driver open `tls://h:6514`). Option values count as addresses when they have a
//! scheme (`tcp://h:p`, `unix:///p`), are `host:port`, or are absolute paths; a bare host
//! counts only under a key ending in `address` (`fluentd-address=h`).
//! A value without a port (`udp://h`, `fluentd-address=h`) names its host at the driver's
//! default port, which the host cannot know: it matches the ports of the plugin's declared
//! default addresses and the well-known log ports (514 syslog, 601 syslog-tcp, 6514
//! syslog-tls, 24224 fluentd), never any port, so a plugin cannot scan the host.
//! The plugin's granted default addresses are allowed only when no option names an address
//! (as the WIT says).
//!
//! `http`: a URL is allowed when its scheme, host and port equal those of a URL that is a
//! log option value, or match a granted pattern (`*` = exactly one DNS label). Link-local
//! addresses (169.254.0.0/16, fe80::/10, the cloud metadata services) are always refused.

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use super::{Capabilities, Grants};

const WELL_KNOWN_LOG_PORTS: &[u16] = &[514, 601, 6514, 24224];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transport {
    Tcp,
    Udp,
    Tls,
    Unix,
    UnixGram,
}

/// A parsed `endpoints.conn.open` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Net {
        transport: Transport,
        host: String,
        port: u16,
    },
    Path {
        transport: Transport,
        path: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Net { host: String, port: Option<u16> },
    Path(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    pub(crate) log_dir: bool,
    pub(crate) read_only: bool,
    pub(crate) network: bool,
    pub(crate) http: bool,
    secrets: Vec<String>,
    named: Vec<Target>,
    defaults: Vec<Target>,
    default_ports: Vec<u16>,
    origins: Vec<Origin>,
    patterns: Vec<Origin>,
    values: Vec<String>,
}

impl Policy {
    /// Nothing granted: `describe`, `validate`.
    pub(crate) fn none() -> Self {
        Policy::default()
    }

    pub(crate) fn new(
        needs: &Capabilities,
        grants: &Grants,
        opts: &[(String, String)],
        reader: bool,
    ) -> Self {
        let values: Vec<String> = opts.iter().map(|(_, v)| v.clone()).collect();
        let log_dir = needs.log_dir && grants.log_dir;
        if reader {
            // A reader only reads the files its logger wrote.
            return Policy {
                log_dir,
                read_only: true,
                ..Policy::default()
            };
        }
        let network = needs.network && grants.network;
        let http = needs.http && grants.http;
        let defaults: Vec<Target> = if network {
            needs
                .default_addresses
                .iter()
                .filter_map(|a| parse_endpoint(a).ok())
                .map(Target::from)
                .collect()
        } else {
            Vec::new()
        };
        let default_ports = defaults
            .iter()
            .filter_map(|t| match t {
                Target::Net { port, .. } => *port,
                Target::Path(_) => None,
            })
            .collect();
        Policy {
            log_dir,
            read_only: false,
            network,
            http,
            secrets: needs
                .secrets
                .iter()
                .filter(|s| grants.secrets.contains(s))
                .cloned()
                .collect(),
            named: if network {
                opts.iter()
                    .filter_map(|(k, v)| option_target(k, v))
                    .collect()
            } else {
                Vec::new()
            },
            defaults,
            default_ports,
            origins: if http {
                values.iter().filter_map(|v| parse_origin(v)).collect()
            } else {
                Vec::new()
            },
            patterns: if http {
                needs
                    .http_patterns
                    .iter()
                    .filter_map(|p| parse_origin(p))
                    .collect()
            } else {
                Vec::new()
            },
            values,
        }
    }

    /// The parsed address, or why it is refused.
    pub(crate) fn check_address(&self, address: &str) -> Result<Endpoint, String> {
        if !self.network {
            return Err(format!(
                "{address}: the plugin was not granted network access"
            ));
        }
        let ep = parse_endpoint(address)?;
        let target = Target::from(ep.clone());
        let named = self.named.iter().any(|t| self.matches(t, &target));
        let default = self.named.is_empty() && self.defaults.contains(&target);
        if named || default {
            Ok(ep)
        } else {
            Err(format!(
                "{address}: no log option of the container names this address"
            ))
        }
    }

    fn matches(&self, named: &Target, wanted: &Target) -> bool {
        match (named, wanted) {
            (Target::Path(a), Target::Path(b)) => a == b,
            (
                Target::Net { host: h1, port: p1 },
                Target::Net {
                    host: h2,
                    port: Some(p2),
                },
            ) => {
                h1 == h2
                    && match p1 {
                        Some(p1) => p1 == p2,
                        None => {
                            self.default_ports.contains(p2) || WELL_KNOWN_LOG_PORTS.contains(p2)
                        }
                    }
            }
            _ => false,
        }
    }

    /// A file the host reads for the plugin (TLS material) must be a log option's value.
    pub(crate) fn check_file(&self, path: &str) -> Result<(), String> {
        if self.values.iter().any(|v| v == path) {
            Ok(())
        } else {
            Err(format!(
                "{path}: no log option of the container names this file"
            ))
        }
    }

    pub(crate) fn check_url(&self, url: &str) -> Result<(), String> {
        if !self.http {
            return Err(format!("{url}: the plugin was not granted http"));
        }
        let Some(o) = parse_origin(url) else {
            return Err(format!("{url}: not an http or https URL"));
        };
        if o.host.parse::<IpAddr>().is_ok_and(|ip| is_link_local(&ip)) {
            return Err(format!(
                "{url}: link-local and metadata addresses are never reachable"
            ));
        }
        if self.origins.contains(&o) || self.patterns.iter().any(|p| pattern_matches(p, &o)) {
            Ok(())
        } else {
            Err(format!(
                "{url}: neither a log option nor a granted pattern names {}://{}:{}",
                o.scheme, o.host, o.port
            ))
        }
    }

    pub(crate) fn secret_granted(&self, name: &str) -> bool {
        self.secrets.iter().any(|s| s == name)
    }
}

impl From<Endpoint> for Target {
    fn from(ep: Endpoint) -> Self {
        match ep {
            Endpoint::Net { host, port, .. } => Target::Net {
                host,
                port: Some(port),
            },
            Endpoint::Path { path, .. } => Target::Path(path),
        }
    }
}

/// `udp://h:p`, `tcp://h:p`, `tls://h:p`, `unix:///p`, `unixgram:///p`.
pub(crate) fn parse_endpoint(address: &str) -> Result<Endpoint, String> {
    let bad = |why: &str| format!("{address}: {why}");
    let (scheme, rest) = address
        .split_once("://")
        .ok_or_else(|| bad("expected SCHEME://ADDRESS"))?;
    let transport = match scheme {
        "tcp" => Transport::Tcp,
        "udp" => Transport::Udp,
        "tls" => Transport::Tls,
        "unix" => Transport::Unix,
        "unixgram" => Transport::UnixGram,
        _ => return Err(bad("scheme must be tcp, udp, tls, unix or unixgram")),
    };
    if matches!(transport, Transport::Unix | Transport::UnixGram) {
        let path = normal_path(rest).ok_or_else(|| bad("expected an absolute path"))?;
        return Ok(Endpoint::Path { transport, path });
    }
    let (host, port) = split_host_port(rest).ok_or_else(|| bad("expected HOST:PORT"))?;
    let port = port.ok_or_else(|| bad("a port is required"))?;
    Ok(Endpoint::Net {
        transport,
        host,
        port,
    })
}

/// What address, if any, a log option value names.
fn option_target(key: &str, value: &str) -> Option<Target> {
    if let Some((scheme, rest)) = value.split_once("://") {
        return match scheme {
            "unix" | "unixgram" => normal_path(rest).map(Target::Path),
            "http" | "https" => None,
            _ => split_host_port(rest).map(|(host, port)| Target::Net { host, port }),
        };
    }
    if value.starts_with('/') {
        return normal_path(value).map(Target::Path);
    }
    match split_host_port(value)? {
        (host, Some(port)) => Some(Target::Net {
            host,
            port: Some(port),
        }),
        (host, None) if key.ends_with("address") => Some(Target::Net { host, port: None }),
        _ => None,
    }
}

/// An absolute path without `.` or `..` components (no normalising `..` away: a path that
/// needs it is refused, so that what is checked is what is opened).
fn normal_path(s: &str) -> Option<PathBuf> {
    let p = Path::new(s);
    if !p.is_absolute()
        || p.components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return None;
    }
    Some(p.components().collect())
}

/// `host[:port][/...]` with `[v6]` hosts; the host normalised.
fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let authority = s.split('/').next()?;
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        match after {
            "" => (h, None),
            _ => (h, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => (authority, None), // a bare IPv6 address
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0)?),
        None => None,
    };
    Some((normal_host(host)?, port))
}

fn normal_host(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip.to_string());
    }
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*')
        });
    ok.then_some(host)
}

fn parse_origin(url: &str) -> Option<Origin> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    // No userinfo: `https://allowed@evil` must not read as host "allowed".
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains('@') {
        return None;
    }
    let (host, port) = split_host_port(authority)?;
    Some(Origin {
        scheme,
        host,
        port: port.unwrap_or(default_port),
    })
}

fn pattern_matches(pattern: &Origin, o: &Origin) -> bool {
    if pattern.scheme != o.scheme || pattern.port != o.port {
        return false;
    }
    let (p, h): (Vec<&str>, Vec<&str>) = (
        pattern.host.split('.').collect(),
        o.host.split('.').collect(),
    );
    p.len() == h.len()
        && p.iter()
            .zip(&h)
            .all(|(p, h)| (*p == "*" && !h.is_empty() && *h != "*") || p == h)
}

/// Link-local and cloud metadata addresses: never reachable from a plugin.
pub(crate) fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4.is_link_local();
            }
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || *v6
                    == "fd00:ec2::254"
                        .parse::<std::net::Ipv6Addr>()
                        .expect("valid literal")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(network: bool, defaults: &[&str], http: bool, patterns: &[&str]) -> Capabilities {
        Capabilities {
            log_dir: false,
            network,
            default_addresses: defaults.iter().map(|s| s.to_string()).collect(),
            http_patterns: patterns.iter().map(|s| s.to_string()).collect(),
            http,
            secrets: vec!["aws".into()],
        }
    }

    fn opts(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn addresses_named_by_options_are_allowed_others_refused() {
        let p = Policy::new(
            &caps(true, &["unixgram:///dev/log"], false, &[]),
            &Grants::all(),
            &opts(&[
                ("syslog-address", "tcp+tls://LOGS.example.com.:6514"),
                ("tag", "web"),
            ]),
            false,
        );
        assert!(p.check_address("tls://logs.example.com:6514").is_ok());
        assert!(p.check_address("tcp://logs.example.com:6514").is_ok());
        let err = p.check_address("tcp://logs.example.com:22").unwrap_err();
        assert!(err.contains("no log option"), "{err}");
        assert!(p.check_address("tcp://127.0.0.1:6514").is_err());
        // An option names an address, so the default is not used.
        assert!(p.check_address("unixgram:///dev/log").is_err());
    }

    #[test]
    fn defaults_apply_only_when_no_option_names_an_address() {
        let c = caps(
            true,
            &["unixgram:///dev/log", "tcp://127.0.0.1:24224"],
            false,
            &[],
        );
        let p = Policy::new(&c, &Grants::all(), &opts(&[("tag", "x")]), false);
        assert!(p.check_address("unixgram:///dev/log").is_ok());
        assert!(p.check_address("tcp://127.0.0.1:24224").is_ok());
        assert!(p.check_address("unix:///dev/../dev/log").is_err());
        let denied = Policy::new(&c, &Grants::default(), &[], false);
        assert!(
            denied
                .check_address("unixgram:///dev/log")
                .unwrap_err()
                .contains("not granted")
        );
    }

    #[test]
    fn portless_values_match_default_and_well_known_ports_only() {
        let c = caps(true, &["tcp://127.0.0.1:24224"], false, &[]);
        let p = Policy::new(
            &c,
            &Grants::all(),
            &opts(&[("fluentd-address", "fluent.local"), ("env", "a")]),
            false,
        );
        assert!(p.check_address("tcp://fluent.local:24224").is_ok());
        assert!(p.check_address("tcp://fluent.local:22").is_err());
        // "a" under a key that is not an address names nothing.
        assert!(p.check_address("tcp://a:514").is_err());
        let p = Policy::new(
            &c,
            &Grants::all(),
            &opts(&[
                ("syslog-address", "unix:///run/log.sock"),
                ("x", "[::1]:5140"),
            ]),
            false,
        );
        assert!(p.check_address("unix:///run/log.sock").is_ok());
        assert!(p.check_address("tcp://[::1]:5140").is_ok());
        assert!(p.check_address("tcp://[0:0::1]:5140").is_ok());
    }

    #[test]
    fn urls_must_match_an_option_or_a_pattern_and_never_link_local() {
        let c = caps(false, &[], true, &["https://logs.*.amazonaws.com"]);
        let o = opts(&[
            ("awslogs-endpoint", "http://127.0.0.1:5000"),
            ("x", "https://169.254.169.254"),
        ]);
        let p = Policy::new(&c, &Grants::all(), &o, false);
        assert!(p.check_url("https://logs.us-east-1.amazonaws.com/").is_ok());
        assert!(
            p.check_url("https://logs.us-east-1.amazonaws.com:443/x")
                .is_ok()
        );
        assert!(p.check_url("https://logs.a.b.amazonaws.com/").is_err());
        assert!(p.check_url("http://logs.us-east-1.amazonaws.com/").is_err());
        assert!(p.check_url("http://127.0.0.1:5000/?Action=x").is_ok());
        assert!(p.check_url("http://127.0.0.1:5001/").is_err());
        assert!(p.check_url("http://127.0.0.1:5000@evil.com/").is_err());
        assert!(
            p.check_url("https://169.254.169.254/latest")
                .unwrap_err()
                .contains("link-local")
        );
        assert!(p.check_url("http://[fe80::1]/").is_err());
        let no_http = Policy::new(
            &c,
            &Grants {
                http: false,
                ..Grants::all()
            },
            &o,
            false,
        );
        assert!(
            no_http
                .check_url("http://127.0.0.1:5000/")
                .unwrap_err()
                .contains("not granted")
        );
    }

    #[test]
    fn readers_get_a_read_only_log_dir_and_nothing_else() {
        let mut c = caps(true, &["tcp://127.0.0.1:24224"], true, &[]);
        c.log_dir = true;
        let p = Policy::new(&c, &Grants::all(), &opts(&[("a", "tcp://h:1")]), true);
        assert!(p.log_dir && p.read_only && !p.network && !p.http && !p.secret_granted("aws"));
        let w = Policy::new(
            &c,
            &Grants {
                log_dir: false,
                ..Grants::all()
            },
            &[],
            false,
        );
        assert!(!w.log_dir && w.secret_granted("aws"));
    }

    #[test]
    fn tls_files_must_be_option_values() {
        let p = Policy::new(
            &caps(true, &[], false, &[]),
            &Grants::all(),
            &opts(&[("syslog-tls-ca-cert", "/etc/ca.pem")]),
            false,
        );
        assert!(p.check_file("/etc/ca.pem").is_ok());
        assert!(p.check_file("/etc/shadow").is_err());
    }
}
