//! The `syslog` log driver: Docker's four syslog formats, byte for byte, over udp, tcp,
//! tcp+tls, unix and unixgram. The formatting, framing and reconnect logic live in plain
//! modules; this file only binds them to the SDK's driver trait.

#![deny(unsafe_code)]

pub mod format;
pub mod options;
pub mod sender;

use burrow_plugin_sdk::log::driver::{LogDriver, Needs, Spec};
use burrow_plugin_sdk::log::endpoints::TlsConfig;
use burrow_plugin_sdk::log::host::Conn;
use burrow_plugin_sdk::log::opts::Options;
use burrow_plugin_sdk::log::{Container, Entry, Error, line};

use format::{Framing, Header};
use options::{Address, Config, LOCAL_ADDRESSES};
use sender::{Connector, SendError, Sender, Transport, TransportError};

/// Docker has no connect timeout; the host's per-call deadline (5 s) needs one shorter.
const CONNECT_TIMEOUT_MS: u32 = 3000;

/// The header every message of this container carries; the tag defaults to the short id.
pub fn header(c: &Container, cfg: &Config) -> Header {
    let hostname = if c.host.hostname.is_empty() {
        "localhost".to_string()
    } else {
        c.host.hostname.clone()
    };
    Header {
        facility: cfg.facility,
        format: cfg.format,
        hostname,
        tag: line::tag_or_short_id(c),
        pid: c.host.pid,
        utc_offset_secs: c.host.utc_offset_secs,
    }
}

/// The driver: one sender per container.
pub struct SyslogDriver(Sender<HostConnector>);

impl LogDriver for SyslogDriver {
    const SPEC: Spec = Spec {
        name: "syslog",
        description: "sends container output to a syslog server (Docker's formats)",
        needs: Needs::network(&LOCAL_ADDRESSES),
        options: options::OPTIONS,
    };

    type Config = Config;

    fn config(opts: &Options) -> Result<Config, Error> {
        options::from_options(opts).map_err(|e| Error::InvalidConfig(e.to_string()))
    }

    fn open(c: &Container, cfg: Config) -> Result<Self, Error> {
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
            header(c, &cfg),
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
        Ok(SyslogDriver(sender))
    }

    fn write(&mut self, batch: Vec<Entry>) -> Result<(), Error> {
        self.0
            .write(&batch)
            .map_err(|e| Error::Unavailable(format!("{e}: {}", e.transport())))
    }
}

/// The host's connections, wrapped in TLS for tcp+tls.
pub struct HostConnector {
    tls: Option<TlsConfig>,
}

pub struct HostConn(Conn);

impl Transport for HostConn {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        Ok(self.0.send(data)?)
    }
}

impl Connector for HostConnector {
    type Conn = HostConn;
    fn connect(&mut self, address: &str) -> Result<HostConn, TransportError> {
        Ok(HostConn(Conn::open(
            address,
            self.tls.as_ref(),
            CONNECT_TIMEOUT_MS,
        )?))
    }
}

/// srslog's own text for the local socket; the connection's error otherwise.
fn docker_text(e: &SendError) -> String {
    match e {
        SendError::NoLocalSyslog { .. } => e.to_string(),
        _ => e.transport().message.clone(),
    }
}

burrow_plugin_sdk::log_driver!(SyslogDriver);

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_plugin_sdk::log::{Guest, HostInfo, Kv};
    use burrow_plugin_sdk::testing::{self, FakeHost};

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

    #[test]
    fn lines_reach_the_server_as_docker_frames_them() {
        let host = FakeHost::new();
        let mut c = testing::container();
        c.tag = Some("web".into());
        let opts = [
            ("syslog-address", "tcp+tls://127.0.0.1:6514"),
            ("syslog-format", "rfc5424micro"),
            ("syslog-tls-skip-verify", "false"),
        ];
        let mut d: SyslogDriver = host.open_for(&c, &opts).unwrap();
        d.write(vec![testing::stdout("a"), testing::stderr("bb")])
            .unwrap();
        // Octet-counted rfc5424micro over tls, in one write (a stream), at T0.
        assert_eq!(
            host.sent("tcp://127.0.0.1:6514"),
            [
                b"60 <30>1 2026-11-22T07:48:58.969041Z testhost web 4242 web - a\n\
                61 <27>1 2026-11-22T07:48:58.969041Z testhost web 4242 web - bb\n"
                    .to_vec()
            ]
        );
        let tls = host.tls("tcp://127.0.0.1:6514");
        assert!(tls.len() == 1 && tls[0].as_ref().is_some_and(|t| t.skip_verify));
    }

    #[test]
    fn a_refused_dial_fails_the_start_and_a_broken_one_is_redialled() {
        let host = FakeHost::new();
        host.refuse("unixgram:///dev/log");
        host.refuse("unix:///dev/log");
        let e = host.open::<SyslogDriver>(&[]).err().unwrap();
        assert!(
            matches!(&e, Error::Unavailable(m) if m == "failed to initialize logging driver: Unix syslog delivery error"),
            "{e:?}"
        );
        let addr = "udp://127.0.0.1:514";
        let mut d: SyslogDriver = host.open(&[("syslog-address", "udp://127.0.0.1")]).unwrap();
        host.break_connections(addr);
        d.write(vec![testing::stdout("x")]).unwrap();
        assert_eq!(host.connections(addr), 2, "one reconnect, as srslog");
        assert_eq!(
            host.sent(addr),
            [b"<30>Nov 22 07:48:58 e41187040f57[4242]: x\n".to_vec()]
        );
    }
}
