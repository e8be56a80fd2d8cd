//! The syslog driver's options, parsed and checked the way moby's `daemon/logger/syslog`
//! does, with its error messages.

use burrow_plugin_sdk::log::Kv;
use burrow_plugin_sdk::log::opts::{self, Opt, OptError, Options};
use thiserror::Error;

/// Where the messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// No `syslog-address`: the local syslog socket (`unixgram:///dev/log`, then
    /// `unix:///dev/log`, as Docker's srslog tries them).
    Local,
    Udp(String),
    Tcp(String),
    /// `tcp+tls://`: a tcp connection wrapped in TLS.
    TcpTls(String),
    Unix(String),
    Unixgram(String),
}

/// The addresses tried for [`Address::Local`], in order.
pub const LOCAL_ADDRESSES: [&str; 2] = ["unixgram:///dev/log", "unix:///dev/log"];

impl Address {
    /// The `endpoints` addresses to dial, in order (several only for [`Address::Local`]).
    pub fn endpoints(&self) -> Vec<String> {
        match self {
            Address::Local => LOCAL_ADDRESSES.iter().map(|a| a.to_string()).collect(),
            Address::Udp(h) => vec![format!("udp://{h}")],
            Address::Tcp(h) | Address::TcpTls(h) => vec![format!("tcp://{h}")],
            Address::Unix(p) => vec![format!("unix://{p}")],
            Address::Unixgram(p) => vec![format!("unixgram://{p}")],
        }
    }

    /// One datagram per message (udp, unixgram) rather than a byte stream.
    pub fn is_datagram(&self) -> bool {
        matches!(
            self,
            Address::Udp(_) | Address::Unixgram(_) | Address::Local
        )
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Address::TcpTls(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// srslog's UnixFormatter: `<PRI>Stamp TAG[PID]: MSG`.
    #[default]
    Unix,
    Rfc3164,
    Rfc5424,
    Rfc5424Micro,
}

/// TLS material named by the options; the host reads the files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub skip_verify: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub address: Address,
    /// The facility number, 0..=23.
    pub facility: u8,
    pub format: Format,
    pub tls: Tls,
}

/// Messages are Docker's, verbatim, so scripts that match on them keep working.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OptionError {
    /// An unknown key ("unknown log opt 'x' for syslog log driver").
    #[error(transparent)]
    Opt(#[from] OptError),
    #[error("invalid syslog facility")]
    Facility { value: String },
    #[error("Invalid syslog format")]
    Format { value: String },
    #[error("unsupported scheme: '{scheme}'")]
    Scheme { scheme: String },
    #[error("parse \"{address}\": {reason}")]
    Url {
        address: String,
        reason: &'static str,
    },
    #[error("parse \"{address}\": invalid port \"{port}\" after host")]
    Port { address: String, port: String },
    #[error("stat {path}: no such file or directory")]
    EmptyPath { path: String },
}

/// The options syslog takes, in moby's list; their values are checked by [`from_options`] in
/// Docker's order (address, facility, format).
pub const OPTIONS: &[Opt] = &[
    opts::ENV,
    opts::ENV_REGEX,
    opts::LABELS,
    opts::LABELS_REGEX,
    Opt::text("syslog-address"),
    Opt::text("syslog-facility"),
    Opt::text("syslog-tls-ca-cert"),
    Opt::text("syslog-tls-cert"),
    Opt::text("syslog-tls-key"),
    Opt::text("syslog-tls-skip-verify"),
    opts::TAG,
    Opt::text("syslog-format"),
];

const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Checks every option and builds the configuration, in Docker's order: unknown keys,
/// then the address, the facility and the format.
pub fn parse(opts: &[(String, String)]) -> Result<Config, OptionError> {
    let kvs: Vec<Kv> = opts
        .iter()
        .map(|(key, value)| Kv {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    from_options(&Options::parse("syslog", OPTIONS, &kvs)?)
}

/// The configuration from options whose keys passed [`OPTIONS`].
pub fn from_options(o: &Options) -> Result<Config, OptionError> {
    let get = |key: &str| o.raw(key);
    let address = parse_address(get("syslog-address").unwrap_or(""))?;
    let facility = parse_facility(get("syslog-facility").unwrap_or(""))?;
    let format = parse_format(get("syslog-format").unwrap_or(""))?;
    let non_empty = |key: &str| get(key).filter(|v| !v.is_empty()).map(str::to_string);
    let tls = Tls {
        ca_file: non_empty("syslog-tls-ca-cert"),
        cert_file: non_empty("syslog-tls-cert"),
        key_file: non_empty("syslog-tls-key"),
        // Docker looks only at the key's presence: `syslog-tls-skip-verify=false` skips too.
        skip_verify: get("syslog-tls-skip-verify").is_some(),
    };
    Ok(Config {
        address,
        facility,
        format,
        tls,
    })
}

pub fn parse_facility(value: &str) -> Result<u8, OptionError> {
    if value.is_empty() {
        return Ok(3);
    }
    if let Some((_, n)) = FACILITIES.iter().find(|(name, _)| *name == value) {
        return Ok(*n);
    }
    // Go's strconv.Atoi: an optional sign, then decimal digits.
    let digits = value.strip_prefix('+').unwrap_or(value);
    match digits.parse::<i64>() {
        Ok(n) if (0..=23).contains(&n) && !digits.starts_with('+') => Ok(n as u8),
        _ => Err(OptionError::Facility {
            value: value.to_string(),
        }),
    }
}

pub fn parse_format(value: &str) -> Result<Format, OptionError> {
    match value {
        "" => Ok(Format::Unix),
        "rfc3164" => Ok(Format::Rfc3164),
        "rfc5424" => Ok(Format::Rfc5424),
        "rfc5424micro" => Ok(Format::Rfc5424Micro),
        _ => Err(OptionError::Format {
            value: value.to_string(),
        }),
    }
}

/// Go's `url.Parse` as far as syslog addresses need it, then moby's checks. Docker also
/// stats unix socket paths here; a sandboxed guest cannot, so a missing socket shows up
/// as a failed connection at `open` instead.
pub fn parse_address(address: &str) -> Result<Address, OptionError> {
    if address.is_empty() {
        return Ok(Address::Local);
    }
    let url_err = |reason| OptionError::Url {
        address: address.to_string(),
        reason,
    };
    let (scheme, rest) = split_scheme(address).map_err(url_err)?;
    let scheme = scheme.to_ascii_lowercase();
    // Strip the query and fragment as url.Parse does.
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.strip_prefix("//") {
        Some(after) => match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        },
        None if scheme.is_empty() => {
            let first = rest.split('/').next().unwrap_or("");
            if first.contains(':') {
                return Err(url_err("first path segment in URL cannot contain colon"));
            }
            ("", rest)
        }
        // "unix:foo" is opaque in Go: the path stays empty.
        None => ("", ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    check_port(address, host)?;
    match scheme.as_str() {
        "unix" | "unixgram" => {
            if path.is_empty() {
                return Err(OptionError::EmptyPath {
                    path: String::new(),
                });
            }
            Ok(if scheme == "unix" {
                Address::Unix(path.to_string())
            } else {
                Address::Unixgram(path.to_string())
            })
        }
        "udp" | "tcp" | "tcp+tls" => {
            let has_port = match host.strip_prefix('[') {
                Some(v6) => v6.split_once(']').is_some_and(|(_, p)| p.starts_with(':')),
                None => host.contains(':'),
            };
            let host = if has_port {
                host.to_string()
            } else {
                format!("{host}:514")
            };
            Ok(match scheme.as_str() {
                "udp" => Address::Udp(host),
                "tcp" => Address::Tcp(host),
                _ => Address::TcpTls(host),
            })
        }
        _ => Err(OptionError::Scheme { scheme }),
    }
}

/// Go's `getScheme`: a letter, then letters, digits, `+`, `-`, `.`, up to the first ':'.
fn split_scheme(raw: &str) -> Result<(&str, &str), &'static str> {
    for (i, c) in raw.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err("missing protocol scheme"),
            ':' => return Ok((&raw[..i], &raw[i + 1..])),
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

/// url.Parse refuses a non-numeric port after the host.
fn check_port(address: &str, host: &str) -> Result<(), OptionError> {
    let port = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(_, p)| p),
        None => host.find(':').map_or("", |i| &host[i..]),
    };
    if port.is_empty() || port == ":" {
        return Ok(());
    }
    if !port.starts_with(':') || !port[1..].bytes().all(|b| b.is_ascii_digit()) {
        return Err(OptionError::Port {
            address: address.to_string(),
            port: port.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_local_socket_daemon_and_unix_format() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.address, Address::Local);
        assert_eq!(
            c.address.endpoints(),
            ["unixgram:///dev/log", "unix:///dev/log"]
        );
        assert_eq!(c.facility, 3);
        assert_eq!(c.format, Format::Unix);
        assert_eq!(c.tls, Tls::default());
    }

    #[test]
    fn unknown_option_uses_dockers_message() {
        let e = parse(&opts(&[("tag", "x"), ("syslog-tag", "y")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown log opt 'syslog-tag' for syslog log driver"
        );
    }

    #[test]
    fn facility_names_and_numbers() {
        assert_eq!(parse_facility("local3").unwrap(), 19);
        assert_eq!(parse_facility("authpriv").unwrap(), 10);
        assert_eq!(parse_facility("0").unwrap(), 0);
        assert_eq!(parse_facility("23").unwrap(), 23);
        assert_eq!(parse_facility("-0").unwrap(), 0);
        for bad in ["24", "-1", "Daemon", "x", "1.5"] {
            assert_eq!(
                parse_facility(bad).unwrap_err().to_string(),
                "invalid syslog facility",
                "{bad}"
            );
        }
    }

    #[test]
    fn formats() {
        assert_eq!(parse_format("rfc5424micro").unwrap(), Format::Rfc5424Micro);
        assert_eq!(parse_format("rfc3164").unwrap(), Format::Rfc3164);
        assert_eq!(
            parse(&opts(&[("syslog-format", "rfc5425")]))
                .unwrap_err()
                .to_string(),
            "Invalid syslog format"
        );
    }

    #[test]
    fn addresses_get_default_port_and_endpoint_form() {
        let cases = [
            ("udp://127.0.0.1", "udp://127.0.0.1:514", true),
            ("tcp://127.0.0.1:5514", "tcp://127.0.0.1:5514", false),
            (
                "tcp+tls://logs.example:6514",
                "tcp://logs.example:6514",
                false,
            ),
            ("TCP://[::1]", "tcp://[::1]:514", false),
            ("udp://[::1]:55", "udp://[::1]:55", true),
            ("unix:///dev/log", "unix:///dev/log", false),
            ("unixgram:///run/x.sock", "unixgram:///run/x.sock", true),
        ];
        for (input, endpoint, dgram) in cases {
            let a = parse_address(input).unwrap();
            assert_eq!(a.endpoints(), [endpoint], "{input}");
            assert_eq!(a.is_datagram(), dgram, "{input}");
        }
        assert!(parse_address("tcp+tls://h:1").unwrap().is_tls());
    }

    #[test]
    fn address_errors_match_go() {
        let cases = [
            ("localhost:514", "unsupported scheme: 'localhost'"),
            ("http://x", "unsupported scheme: 'http'"),
            (
                "127.0.0.1:514",
                "parse \"127.0.0.1:514\": first path segment in URL cannot contain colon",
            ),
            ("://x", "parse \"://x\": missing protocol scheme"),
            (
                "tcp://h:port",
                "parse \"tcp://h:port\": invalid port \":port\" after host",
            ),
            ("unix://", "stat : no such file or directory"),
        ];
        for (input, msg) in cases {
            assert_eq!(
                parse_address(input).unwrap_err().to_string(),
                msg,
                "{input}"
            );
        }
    }

    #[test]
    fn tls_options_and_skip_verify_on_presence() {
        let c = parse(&opts(&[
            ("syslog-address", "tcp+tls://127.0.0.1:6514"),
            ("syslog-tls-ca-cert", "/ca.pem"),
            ("syslog-tls-skip-verify", "false"),
        ]))
        .unwrap();
        assert_eq!(c.tls.ca_file.as_deref(), Some("/ca.pem"));
        assert!(c.tls.skip_verify);
        assert_eq!(c.tls.cert_file, None);
    }
}
