//! The driver's bytes against a real rsyslogd (tests/servers/rsyslog.sh), over std
//! sockets standing in for the host's `endpoints`:
//!
//!     tests/servers/rsyslog.sh start /tmp/rs 5514 6514
//!     BURROW_TEST_RSYSLOG_DIR=/tmp/rs cargo test -p log-syslog --test rsyslog -- --ignored
//!     tests/servers/rsyslog.sh stop /tmp/rs
//!
//! rsyslog records each message's %rawmsg% (framing removed) on one line of a file per
//! transport, so a wrong frame shows up as a wrong or missing line.

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burrow_plugin_sdk::log::{Entry, Partial, Source};
use log_syslog::format::{Framing, Header};
use log_syslog::options::{self, Address};
use log_syslog::sender::{Connector, Sender, Transport, TransportError};

const SKIP: &str = "needs BURROW_TEST_RSYSLOG_DIR from tests/servers/rsyslog.sh";
/// 2026-11-22T07:49:25.058287Z, as in the dockerd captures.
const T: u64 = 1_795_333_765_058_287_912;

enum StdConn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Unix(UnixStream),
    Unixgram(UnixDatagram),
}

fn err(e: impl std::fmt::Display) -> TransportError {
    TransportError {
        message: e.to_string(),
    }
}

impl Transport for StdConn {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        match self {
            StdConn::Udp(s) => s.send(data).map(|_| ()).map_err(err),
            StdConn::Tcp(s) => s.write_all(data).map_err(err),
            StdConn::Tls(s) => s.write_all(data).and_then(|_| s.flush()).map_err(err),
            StdConn::Unix(s) => s.write_all(data).map_err(err),
            StdConn::Unixgram(s) => s.send(data).map(|_| ()).map_err(err),
        }
    }
}

/// Dials the same address strings the plugin hands to `endpoints`.
struct StdConnector {
    tls: bool,
}

impl Connector for StdConnector {
    type Conn = StdConn;
    fn connect(&mut self, address: &str) -> Result<StdConn, TransportError> {
        let (scheme, rest) = address.split_once("://").expect("scheme");
        Ok(match scheme {
            "udp" => {
                let s = UdpSocket::bind("127.0.0.1:0").map_err(err)?;
                s.connect(rest).map_err(err)?;
                StdConn::Udp(s)
            }
            "tcp" if self.tls => {
                let tcp = TcpStream::connect(rest).map_err(err)?;
                let config = rustls::ClientConfig::builder()
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(SkipVerify))
                    .with_no_client_auth();
                let name = "localhost".try_into().unwrap();
                let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(err)?;
                StdConn::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
            }
            "tcp" => StdConn::Tcp(TcpStream::connect(rest).map_err(err)?),
            "unix" => StdConn::Unix(UnixStream::connect(rest).map_err(err)?),
            "unixgram" => {
                let s = UnixDatagram::unbound().map_err(err)?;
                s.connect(rest).map_err(err)?;
                StdConn::Unixgram(s)
            }
            other => panic!("unexpected scheme {other}"),
        })
    }
}

/// syslog-tls-skip-verify: the test server's certificate is self-signed.
#[derive(Debug)]
struct SkipVerify;

impl rustls::client::danger::ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

struct Server {
    dir: PathBuf,
    port: u16,
    tls_port: u16,
}

fn server() -> Server {
    let dir = PathBuf::from(std::env::var("BURROW_TEST_RSYSLOG_DIR").expect(SKIP));
    let ports = std::fs::read_to_string(dir.join("ports")).expect("DIR/ports from rsyslog.sh");
    let mut it = ports.split_whitespace().map(|p| p.parse::<u16>().unwrap());
    let (port, tls_port) = (it.next().unwrap(), it.next().unwrap());
    Server {
        dir,
        port,
        tls_port,
    }
}

fn entry(line: &str, source: Source, partial: Option<Partial>) -> Entry {
    Entry {
        time_ns: T,
        source,
        line: line.as_bytes().to_vec(),
        partial,
        attrs: vec![],
    }
}

/// Sends a batch through the driver's own option parsing, formatting and framing, and
/// returns the lines rsyslog recorded in `file` that carry `tag`.
fn run(
    server: &Server,
    opts: &[(&str, String)],
    tag: &str,
    file: &str,
    batch: &[Entry],
) -> Vec<String> {
    let opts: Vec<(String, String)> = opts
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let cfg = options::parse(&opts).expect("valid options");
    let header = Header {
        facility: cfg.facility,
        format: cfg.format,
        hostname: "vm".into(),
        tag: tag.into(),
        pid: 23173,
        utc_offset_secs: 0,
    };
    let mut sender = Sender::new(
        StdConnector {
            tls: matches!(cfg.address, Address::TcpTls(_)),
        },
        cfg.address.endpoints(),
        header,
        Framing::for_config(cfg.format, cfg.address.is_tls()),
        cfg.address.is_datagram(),
    );
    sender.connect().expect("connect to rsyslog");
    sender.write(batch).expect("write to rsyslog");
    let expected = batch.iter().filter(|e| !e.line.is_empty()).count();
    let path = server.dir.join(file);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains(tag))
            .map(str::to_string)
            .collect();
        if lines.len() >= expected || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tag(case: &str) -> String {
    format!("it{}{case}", std::process::id())
}

#[test]
#[ignore = "needs BURROW_TEST_RSYSLOG_DIR from tests/servers/rsyslog.sh"]
fn udp_default_format() {
    let s = server();
    let t = tag("udp");
    let got = run(
        &s,
        &[("syslog-address", format!("udp://127.0.0.1:{}", s.port))],
        &t,
        "udp.log",
        &[
            entry("out udp", Source::Stdout, None),
            entry("", Source::Stdout, None),
            entry("err udp", Source::Stderr, None),
        ],
    );
    assert_eq!(
        got,
        [
            format!("<30>Nov 22 07:49:25 {t}[23173]: out udp"),
            format!("<27>Nov 22 07:49:25 {t}[23173]: err udp"),
        ]
    );
}

#[test]
#[ignore = "needs BURROW_TEST_RSYSLOG_DIR from tests/servers/rsyslog.sh"]
fn tcp_rfc5424_newline_framed_with_partial_chunks() {
    let s = server();
    let t = tag("tcp");
    let p = |ordinal, last| {
        Some(Partial {
            id: "p1".into(),
            ordinal,
            last,
        })
    };
    let got = run(
        &s,
        &[
            ("syslog-address", format!("tcp://127.0.0.1:{}", s.port)),
            ("syslog-format", "rfc5424".into()),
        ],
        &t,
        "tcp.log",
        &[
            entry("a", Source::Stdout, None),
            entry("", Source::Stdout, None),
            entry("bb", Source::Stdout, None),
            entry("chunk1", Source::Stdout, p(1, false)),
            entry("chunk2", Source::Stdout, p(2, true)),
        ],
    );
    let line = |m: &str| format!("<30>1 2026-11-22T07:49:25Z vm {t} 23173 {t} - {m}");
    assert_eq!(got, [line("a"), line("bb"), line("chunk1"), line("chunk2")]);
}

#[test]
#[ignore = "needs BURROW_TEST_RSYSLOG_DIR from tests/servers/rsyslog.sh"]
fn tls_rfc5424micro_octet_counted() {
    let s = server();
    let t = tag("tlsmicro");
    let got = run(
        &s,
        &[
            (
                "syslog-address",
                format!("tcp+tls://127.0.0.1:{}", s.tls_port),
            ),
            ("syslog-format", "rfc5424micro".into()),
            ("syslog-tls-skip-verify", String::new()),
        ],
        &t,
        "tls.log",
        &[
            entry("a", Source::Stdout, None),
            entry("bb", Source::Stderr, None),
            // A newline inside a message survives only with octet counting.
            entry("multi\nline", Source::Stdout, None),
        ],
    );
    let line =
        |pri: u8, m: &str| format!("<{pri}>1 2026-11-22T07:49:25.058287Z vm {t} 23173 {t} - {m}");
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0], line(30, "a"));
    assert_eq!(got[1], line(27, "bb"));
    // rsyslog escapes the control character on reception.
    assert_eq!(got[2], line(30, "multi#012line"));
}

#[test]
#[ignore = "needs BURROW_TEST_RSYSLOG_DIR from tests/servers/rsyslog.sh"]
fn tls_rfc3164_newline_framed_local3() {
    let s = server();
    let t = tag("tls3164");
    let got = run(
        &s,
        &[
            (
                "syslog-address",
                format!("tcp+tls://127.0.0.1:{}", s.tls_port),
            ),
            ("syslog-format", "rfc3164".into()),
            ("syslog-facility", "local3".into()),
        ],
        &t,
        "tls.log",
        &[
            entry("out", Source::Stdout, None),
            entry("err", Source::Stderr, None),
        ],
    );
    assert_eq!(
        got,
        [
            format!("<158>Nov 22 07:49:25 vm {t}[23173]: out"),
            format!("<155>Nov 22 07:49:25 vm {t}[23173]: err"),
        ]
    );
}

#[test]
#[ignore = "needs BURROW_TEST_RSYSLOG_DIR from tests/servers/rsyslog.sh"]
fn unix_stream_rfc5424micro() {
    let s = server();
    let t = tag("unix");
    let sock = s.dir.join("stream.sock");
    let got = run(
        &s,
        &[
            ("syslog-address", format!("unix://{}", sock.display())),
            ("syslog-format", "rfc5424micro".into()),
            ("syslog-facility", "16".into()),
        ],
        &t,
        "unix.log",
        &[
            entry("one", Source::Stdout, None),
            entry("two", Source::Stdout, None),
        ],
    );
    let line = |m: &str| format!("<134>1 2026-11-22T07:49:25.058287Z vm {t} 23173 {t} - {m}");
    assert_eq!(got, [line("one"), line("two")]);
}

#[test]
#[ignore = "needs BURROW_TEST_RSYSLOG_DIR from tests/servers/rsyslog.sh"]
fn unixgram_default_format() {
    let s = server();
    let t = tag("dgram");
    let sock = s.dir.join("dgram.sock");
    let got = run(
        &s,
        &[("syslog-address", format!("unixgram://{}", sock.display()))],
        &t,
        "unixgram.log",
        &[
            entry("out dgram", Source::Stdout, None),
            entry("err dgram", Source::Stderr, None),
        ],
    );
    assert_eq!(
        got,
        [
            format!("<30>Nov 22 07:49:25 {t}[23173]: out dgram"),
            format!("<27>Nov 22 07:49:25 {t}[23173]: err dgram"),
        ]
    );
}

#[test]
#[ignore = "needs BURROW_TEST_RSYSLOG_DIR from tests/servers/rsyslog.sh"]
fn refused_connection_reports_the_os_error() {
    let _ = server();
    // A port nothing listens on: bind one, learn it, close it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg =
        options::parse(&[("syslog-address".into(), format!("tcp://127.0.0.1:{port}"))]).unwrap();
    let header = Header {
        facility: 3,
        format: cfg.format,
        hostname: "vm".into(),
        tag: "t".into(),
        pid: 1,
        utc_offset_secs: 0,
    };
    let mut sender = Sender::new(
        StdConnector { tls: false },
        cfg.address.endpoints(),
        header,
        Framing::Plain,
        false,
    );
    let e = sender.connect().unwrap_err();
    assert!(
        e.transport().message.contains("Connection refused"),
        "{e}: {}",
        e.transport()
    );
}
