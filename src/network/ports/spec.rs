//! `-p [ip:][hostPort:]containerPort[/proto]`: what a port specification says, checked as
//! Docker checks it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Why a `-p` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid port specification {spec:?}: {problem}")]
pub struct PortSpecError {
    pub spec: String,
    pub problem: SpecProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecProblem {
    #[error("sctp ports cannot be published: use tcp or udp")]
    Sctp,
    #[error("the protocol must be tcp, udp or sctp")]
    Protocol,
    #[error("unclosed [ in the address")]
    UnclosedBracket,
    #[error("use [ip:]hostPort:containerPort")]
    Shape,
    #[error("only IPv4 host addresses so far")]
    Ipv6Host,
    #[error("{0:?} is not an IP address")]
    NotAnIp(String),
    #[error("{0:?} is not a port (1-65535)")]
    NotAPort(String),
    #[error("the range {0} ends before it starts")]
    Reversed(String),
    #[error(
        "the host and container port ranges differ in length: give ranges of the same length, or one host range for one container port"
    )]
    RangeLengths,
}

/// One container port of a `-p`: the host side (`host_port` 0 = any free port; with
/// `host_port_end`, the first free one from `host_port` to it) and the container's port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    #[serde(default)]
    pub host_ip: Option<String>,
    pub host_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port_end: Option<u16>,
    pub container_port: u16,
    pub proto: String,
}

impl PortBinding {
    /// `80/tcp`, Docker's key.
    pub fn key(&self) -> String {
        format!("{}/{}", self.container_port, self.proto)
    }

    /// The host port as asked: `8080`, a range `8000-8010`, or "" for any.
    pub fn host_ports(&self) -> String {
        match (self.host_port, self.host_port_end) {
            (0, _) => String::new(),
            (start, Some(end)) => format!("{start}-{end}"),
            (port, None) => port.to_string(),
        }
    }
}

/// Parses one `-p` value into a binding per container port: `[ip:][hostPort:]containerPort`,
/// where either port may be a range `START-END` (Docker's rules: a container range takes a
/// host range of the same length, or none; a host range for one container port means the
/// first free port in it).
pub fn parse(spec: &str) -> Result<Vec<PortBinding>, PortSpecError> {
    let bad = |problem| PortSpecError {
        spec: spec.to_string(),
        problem,
    };
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    match proto.as_str() {
        "tcp" | "udp" => {}
        "sctp" => return Err(bad(SpecProblem::Sctp)),
        _ => return Err(bad(SpecProblem::Protocol)),
    }
    // [ip:][hostPort:]containerPort; an IPv6 address is written in brackets.
    let (ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, r) = r
            .split_once("]:")
            .ok_or_else(|| bad(SpecProblem::UnclosedBracket))?;
        (Some(ip.to_string()), r.to_string())
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (None, rest.to_string()),
            3 => (
                Some(parts[0].to_string()),
                format!("{}:{}", parts[1], parts[2]),
            ),
            _ => return Err(bad(SpecProblem::Shape)),
        }
    };
    if let Some(ip) = ip.as_deref().filter(|ip| !ip.is_empty()) {
        match ip.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => {}
            Ok(IpAddr::V6(_)) => return Err(bad(SpecProblem::Ipv6Host)),
            Err(_) => return Err(bad(SpecProblem::NotAnIp(ip.to_string()))),
        }
    }
    let port = |p: &str| -> Result<u16, PortSpecError> {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad(SpecProblem::NotAPort(p.to_string()))),
            Ok(n) => Ok(n),
        }
    };
    // A port or a range, as (start, end).
    let ports = |p: &str| -> Result<(u16, u16), PortSpecError> {
        match p.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (port(a)?, port(b)?);
                if b < a {
                    return Err(bad(SpecProblem::Reversed(p.to_string())));
                }
                Ok((a, b))
            }
            None => port(p).map(|n| (n, n)),
        }
    };
    let (host, (first, last)) = match rest.split_once(':') {
        Some(("", c)) => (None, ports(c)?),
        Some((h, c)) => (Some(ports(h)?), ports(c)?),
        None => (None, ports(&rest)?),
    };
    let binding = |host_port, host_port_end, container_port| PortBinding {
        host_ip: ip.clone().filter(|ip| !ip.is_empty()),
        host_port,
        host_port_end,
        container_port,
        proto: proto.clone(),
    };
    match host {
        None => Ok((first..=last).map(|c| binding(0, None, c)).collect()),
        Some((start, end)) if first == last && start != end => {
            Ok(vec![binding(start, Some(end), first)])
        }
        Some((start, end)) if end - start == last - first => Ok((first..=last)
            .zip(start..=end)
            .map(|(c, h)| binding(h, None, c))
            .collect()),
        Some(_) => Err(bad(SpecProblem::RangeLengths)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(ip: Option<&str>, host: u16, container: u16) -> PortBinding {
        PortBinding {
            host_ip: ip.map(str::to_string),
            host_port: host,
            host_port_end: None,
            container_port: container,
            proto: "tcp".into(),
        }
    }

    /// The one binding `spec` parses to.
    fn parse1(spec: &str) -> Result<PortBinding, PortSpecError> {
        parse(spec).map(|mut v| {
            assert_eq!(v.len(), 1, "{spec}");
            v.remove(0)
        })
    }

    #[test]
    fn port_specs_parse_as_docker_writes_them() {
        assert_eq!(parse1("80"), Ok(b(None, 0, 80)));
        assert_eq!(parse1("8080:80"), Ok(b(None, 8080, 80)));
        assert_eq!(parse1("8080:80/TCP"), Ok(b(None, 8080, 80)));
        assert_eq!(
            parse1("127.0.0.1:8080:80"),
            Ok(b(Some("127.0.0.1"), 8080, 80))
        );
        assert_eq!(parse1("127.0.0.1::80"), Ok(b(Some("127.0.0.1"), 0, 80)));
        assert_eq!(parse1(":80"), Ok(b(None, 0, 80)));
        let udp = parse1("127.0.0.1:5353:53/udp").unwrap();
        // Ranges: pairwise, each on a free port, or the first free port of a host range.
        let pairs: Vec<(u16, u16)> = parse("8000-8002:80-82")
            .unwrap()
            .iter()
            .map(|b| (b.host_port, b.container_port))
            .collect();
        assert_eq!(pairs, [(8000, 80), (8001, 81), (8002, 82)]);
        assert_eq!(parse("80-81/udp").unwrap().len(), 2);
        let one = parse1("127.0.0.1:8000-8010:80").unwrap();
        assert_eq!((one.host_port, one.host_port_end), (8000, Some(8010)));
        assert_eq!(one.host_ports(), "8000-8010");
        assert_eq!((udp.host_port, udp.container_port), (5353, 53));
        assert_eq!(udp.key(), "53/udp");
        for (spec, why) in [
            ("80/sctp", "sctp ports cannot be published"),
            ("80/xyz", "must be tcp, udp or sctp"),
            ("0", "is not a port"),
            ("70000", "is not a port"),
            ("web:80", "is not a port"),
            ("1.2.3:80:80", "is not an IP address"),
            ("[::1]:80:80", "only IPv4"),
            ("8000-8002:80-81", "differ in length"),
            ("8000:80-81", "differ in length"),
            ("90-80", "ends before it starts"),
            ("a:b:c:d", "use [ip:]hostPort:containerPort"),
        ] {
            let err = parse(spec).unwrap_err().to_string();
            assert!(err.contains(why), "{spec}: {err}");
            assert!(
                err.starts_with(&format!("invalid port specification {spec:?}")),
                "{err}"
            );
        }
    }
}
