//! The `syslog` log driver: Docker's four syslog formats, byte for byte, over udp, tcp,
//! tcp+tls, unix and unixgram. The formatting, framing and reconnect logic live in plain
//! modules; this file only binds them to the WIT world.

#![deny(unsafe_code)]

pub mod format;
pub mod options;
pub mod sender;

use std::cell::RefCell;

use burrow_plugin_sdk::log::endpoints::{Conn, TlsConfig};
use burrow_plugin_sdk::log::{
    Capabilities, Container, Entry, Error, Guest, GuestLogger, Kv, Logger, NoReader, PluginInfo,
};

use format::{Framing, Header};
use options::{Address, Config, LOCAL_ADDRESSES};
use sender::{Connector, SendError, Sender, Transport, TransportError};

/// Docker has no connect timeout; the host's per-call deadline (5 s) needs one shorter.
const CONNECT_TIMEOUT_MS: u32 = 3000;

pub struct SyslogDriver;

fn pairs(opts: &[Kv]) -> Vec<(String, String)> {
    opts.iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect()
}

fn config(opts: &[Kv]) -> Result<Config, Error> {
    options::parse(&pairs(opts)).map_err(|e| Error::InvalidConfig(e.to_string()))
}

/// The header every message of this container carries; the tag defaults to the short id.
pub fn header(c: &Container, cfg: &Config) -> Header {
    let tag = c
        .tag
        .clone()
        .unwrap_or_else(|| c.id.chars().take(12).collect());
    let hostname = if c.host.hostname.is_empty() {
        "localhost".to_string()
    } else {
        c.host.hostname.clone()
    };
    Header {
        facility: cfg.facility,
        format: cfg.format,
        hostname,
        tag,
        pid: c.host.pid,
        utc_offset_secs: c.host.utc_offset_secs,
    }
}

impl Guest for SyslogDriver {
    type Logger = SyslogLogger;
    type Reader = NoReader;

    fn describe() -> PluginInfo {
        PluginInfo {
            name: "syslog".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "sends container output to a syslog server (Docker's formats)".into(),
            needs: Capabilities {
                log_dir: false,
                network: true,
                default_addresses: LOCAL_ADDRESSES.iter().map(|a| a.to_string()).collect(),
                http_patterns: vec![],
                http: false,
                secrets: vec![],
            },
        }
    }

    fn validate(opts: Vec<Kv>) -> Result<(), Error> {
        config(&opts).map(|_| ())
    }

    fn can_read() -> bool {
        false
    }
}

/// `endpoints` connections, wrapped in TLS for tcp+tls.
struct HostConnector {
    tls: Option<TlsConfig>,
}

struct HostConn(Conn);

impl Transport for HostConn {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        self.0.send(data).map_err(transport_error)
    }
}

impl Connector for HostConnector {
    type Conn = HostConn;
    fn connect(&mut self, address: &str) -> Result<HostConn, TransportError> {
        Conn::open(address, self.tls.as_ref(), CONNECT_TIMEOUT_MS)
            .map(HostConn)
            .map_err(transport_error)
    }
}

fn transport_error(e: Error) -> TransportError {
    let message = match e {
        Error::InvalidConfig(m)
        | Error::Unsupported(m)
        | Error::Unavailable(m)
        | Error::Denied(m)
        | Error::Internal(m) => m,
    };
    TransportError { message }
}

pub struct SyslogLogger {
    sender: RefCell<Sender<HostConnector>>,
}

impl GuestLogger for SyslogLogger {
    fn open(c: Container, opts: Vec<Kv>) -> Result<Logger, Error> {
        let cfg = config(&opts)?;
        let tls = match &cfg.address {
            Address::TcpTls(_) => Some(TlsConfig {
                ca_file: cfg.tls.ca_file.clone(),
                cert_file: cfg.tls.cert_file.clone(),
                key_file: cfg.tls.key_file.clone(),
                skip_verify: cfg.tls.skip_verify,
            }),
            _ => None,
        };
        let mut sender = Sender::new(
            HostConnector { tls },
            cfg.address.endpoints(),
            header(&c, &cfg),
            Framing::for_config(cfg.format, cfg.address.is_tls()),
            cfg.address.is_datagram(),
        );
        // Docker dials when the container starts and refuses to start it otherwise.
        sender.connect().map_err(|e| {
            Error::Unavailable(format!(
                "failed to initialize logging driver: {}",
                docker_text(&e)
            ))
        })?;
        Ok(Logger::new(SyslogLogger {
            sender: RefCell::new(sender),
        }))
    }

    fn write(&self, batch: Vec<Entry>) -> Result<(), Error> {
        self.sender
            .borrow_mut()
            .write(&batch)
            .map_err(|e| Error::Unavailable(format!("{e}: {}", e.transport())))
    }

    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// srslog's own text for the local socket; the connection's error otherwise.
fn docker_text(e: &SendError) -> String {
    match e {
        SendError::NoLocalSyslog { .. } => e.to_string(),
        _ => e.transport().message.clone(),
    }
}

// Native builds (unit and integration tests) carry no component exports.
#[cfg(target_arch = "wasm32")]
burrow_plugin_sdk::log::export_log_driver!(SyslogDriver);

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_plugin_sdk::log::HostInfo;

    fn kv(k: &str, v: &str) -> Kv {
        Kv {
            key: k.into(),
            value: v.into(),
        }
    }

    fn container(tag: Option<&str>) -> Container {
        Container {
            id: "e41187040f57d343ff63cae3aa0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b".into(),
            name: "c1".into(),
            image_id: String::new(),
            image_name: "local/bb:1".into(),
            command: "sh".into(),
            hostname: "e41187040f57".into(),
            created_ns: 0,
            tag: tag.map(str::to_string),
            attrs: vec![],
            host: HostInfo {
                hostname: "vm".into(),
                pid: 23173,
                utc_offset_secs: 0,
            },
        }
    }

    #[test]
    fn validate_reports_dockers_messages() {
        assert!(
            SyslogDriver::validate(vec![kv("syslog-facility", "local7"), kv("tag", "x")]).is_ok()
        );
        let e = SyslogDriver::validate(vec![kv("max-size", "1m")]).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidConfig(m) if m == "unknown log opt 'max-size' for syslog log driver"),
            "{e:?}"
        );
        let e = SyslogDriver::validate(vec![kv("syslog-facility", "99")]).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidConfig(m) if m == "invalid syslog facility"),
            "{e:?}"
        );
    }

    #[test]
    fn describe_asks_for_network_and_the_local_sockets() {
        let info = SyslogDriver::describe();
        assert_eq!(info.name, "syslog");
        assert!(info.needs.network);
        assert_eq!(
            info.needs.default_addresses,
            ["unixgram:///dev/log", "unix:///dev/log"]
        );
    }

    #[test]
    fn tag_defaults_to_the_short_id_and_follows_the_rendered_tag() {
        let cfg = options::parse(&[]).unwrap();
        assert_eq!(header(&container(None), &cfg).tag, "e41187040f57");
        assert_eq!(
            header(&container(Some("local/bb:1/c1")), &cfg).tag,
            "local/bb:1/c1"
        );
    }
}
