//! `endpoints.conn`: sockets the host opens for a plugin, only to addresses its policy allows
//! (see policy.rs), with TLS done by the host (rustls).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use wasmtime::component::Resource;

use super::bindings::burrow::plugin::endpoints::{Error, Host, HostConn, TlsConfig};
use super::policy::{Endpoint, Transport};
use super::state::HostState;

/// Connections one instance may hold at once.
const MAX_CONNS: usize = 16;
/// Largest `recv` the host allocates for.
const MAX_RECV: u32 = 1 << 20;

pub enum Conn {
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Udp(UdpSocket),
    Unix(UnixStream),
    UnixGram(UnixDatagram),
}

fn unavailable(what: &str, err: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("{what}: {err}"))
}

impl Host for HostState {}

impl HostConn for HostState {
    fn open(
        &mut self,
        address: String,
        tls: Option<TlsConfig>,
        timeout_ms: u32,
    ) -> Result<Resource<Conn>, Error> {
        let ep = self.policy.check_address(&address).map_err(Error::Denied)?;
        if let Some(t) = &tls {
            for f in [&t.ca_file, &t.cert_file, &t.key_file]
                .into_iter()
                .flatten()
            {
                self.policy.check_file(f).map_err(Error::Denied)?;
            }
        }
        if self.conns >= MAX_CONNS {
            return Err(Error::Denied(format!(
                "{address}: at most {MAX_CONNS} connections per instance"
            )));
        }
        let timeout = self.clamp(timeout_ms);
        let conn = connect(&address, &ep, tls.as_ref(), timeout)?;
        let r = self
            .table
            .push(conn)
            .map_err(|e| Error::Internal(e.to_string()))?;
        self.conns += 1;
        Ok(r)
    }

    fn send(&mut self, conn: Resource<Conn>, data: Vec<u8>) -> Result<(), Error> {
        let timeout = self.clamp(0);
        let conn = self
            .table
            .get_mut(&conn)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let r = match conn {
            Conn::Tcp(s) => s
                .set_write_timeout(Some(timeout))
                .and_then(|()| s.write_all(&data)),
            Conn::Tls(s) => s
                .sock
                .set_write_timeout(Some(timeout))
                .and_then(|()| s.write_all(&data).and_then(|()| s.flush())),
            Conn::Unix(s) => s
                .set_write_timeout(Some(timeout))
                .and_then(|()| s.write_all(&data)),
            Conn::Udp(s) => s.send(&data).map(drop),
            Conn::UnixGram(s) => s
                .set_write_timeout(Some(timeout))
                .and_then(|()| s.send(&data).map(drop)),
        };
        r.map_err(|e| unavailable("send", e))
    }

    fn recv(&mut self, conn: Resource<Conn>, max: u32, timeout_ms: u32) -> Result<Vec<u8>, Error> {
        let timeout = self.clamp(timeout_ms);
        let conn = self
            .table
            .get_mut(&conn)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let mut buf = vec![0; max.min(MAX_RECV) as usize];
        let r = match conn {
            Conn::Tcp(s) => s
                .set_read_timeout(Some(timeout))
                .and_then(|()| s.read(&mut buf)),
            Conn::Tls(s) => s
                .sock
                .set_read_timeout(Some(timeout))
                .and_then(|()| s.read(&mut buf)),
            Conn::Unix(s) => s
                .set_read_timeout(Some(timeout))
                .and_then(|()| s.read(&mut buf)),
            Conn::Udp(s) => s
                .set_read_timeout(Some(timeout))
                .and_then(|()| s.recv(&mut buf)),
            Conn::UnixGram(s) => s
                .set_read_timeout(Some(timeout))
                .and_then(|()| s.recv(&mut buf)),
        };
        let stream = matches!(conn, Conn::Tcp(_) | Conn::Tls(_) | Conn::Unix(_));
        match r {
            Ok(0) if stream && !buf.is_empty() => {
                Err(Error::Unavailable("the peer closed the connection".into()))
            }
            Ok(n) => {
                buf.truncate(n);
                Ok(buf)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(Vec::new())
            }
            Err(e) => Err(unavailable("recv", e)),
        }
    }

    fn drop(&mut self, conn: Resource<Conn>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        self.conns = self.conns.saturating_sub(1);
        Ok(())
    }
}

fn connect(
    address: &str,
    ep: &Endpoint,
    tls: Option<&TlsConfig>,
    timeout: Duration,
) -> Result<Conn, Error> {
    match ep {
        Endpoint::Path {
            transport: Transport::UnixGram,
            path,
        } => {
            let s = UnixDatagram::unbound().map_err(|e| unavailable(address, e))?;
            s.connect(path).map_err(|e| unavailable(address, e))?;
            Ok(Conn::UnixGram(s))
        }
        Endpoint::Path { path, .. } => UnixStream::connect(path)
            .map(Conn::Unix)
            .map_err(|e| unavailable(address, e)),
        Endpoint::Net {
            transport,
            host,
            port,
        } => {
            let deadline = Instant::now() + timeout;
            let addrs: Vec<SocketAddr> = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(|e| unavailable(address, e))?
                .collect();
            match transport {
                Transport::Udp => {
                    let addr = addrs
                        .first()
                        .ok_or_else(|| unavailable(address, "no address"))?;
                    let bind: SocketAddr = if addr.is_ipv4() {
                        ([0, 0, 0, 0], 0).into()
                    } else {
                        ([0u16; 8], 0).into()
                    };
                    let s = UdpSocket::bind(bind).map_err(|e| unavailable(address, e))?;
                    s.connect(addr).map_err(|e| unavailable(address, e))?;
                    Ok(Conn::Udp(s))
                }
                _ => {
                    let tcp = tcp_connect(&addrs, deadline).map_err(|e| unavailable(address, e))?;
                    if *transport == Transport::Tls || tls.is_some() {
                        let default = TlsConfig {
                            ca_file: None,
                            cert_file: None,
                            key_file: None,
                            skip_verify: false,
                        };
                        let cfg = tls_config(tls.unwrap_or(&default))?;
                        let name = ServerName::try_from(host.clone())
                            .map_err(|e| unavailable(address, e))?;
                        let conn = ClientConnection::new(Arc::new(cfg), name)
                            .map_err(|e| unavailable(address, e))?;
                        let mut stream = StreamOwned::new(conn, tcp);
                        // Handshake now, so that a bad certificate fails `open`, not a send.
                        stream
                            .sock
                            .set_read_timeout(Some(
                                deadline
                                    .saturating_duration_since(Instant::now())
                                    .max(Duration::from_millis(1)),
                            ))
                            .ok();
                        while stream.conn.is_handshaking() {
                            stream
                                .conn
                                .complete_io(&mut stream.sock)
                                .map_err(|e| unavailable(address, e))?;
                        }
                        Ok(Conn::Tls(Box::new(stream)))
                    } else {
                        Ok(Conn::Tcp(tcp))
                    }
                }
            }
        }
    }
}

fn tcp_connect(addrs: &[SocketAddr], deadline: Instant) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ));
        }
        match TcpStream::connect_timeout(addr, left) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// rustls config from the container's TLS options (their files were checked in `open`).
fn tls_config(tls: &TlsConfig) -> Result<ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let builder = if tls.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        let bundle = match &tls.ca_file {
            Some(ca) => ca.clone(),
            None => system_bundle().ok_or_else(|| {
                Error::Unavailable(
                    "no system CA bundle found (set SSL_CERT_FILE or give a CA file option)".into(),
                )
            })?,
        };
        let certs = CertificateDer::pem_file_iter(&bundle).map_err(|e| unavailable(&bundle, e))?;
        for cert in certs {
            roots
                .add(cert.map_err(|e| unavailable(&bundle, e))?)
                .map_err(|e| unavailable(&bundle, e))?;
        }
        builder.with_root_certificates(roots)
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| unavailable(cert, e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| unavailable(key, e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| unavailable("client certificate", e))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(Error::InvalidConfig(
            "a client certificate needs both a cert file and a key file".into(),
        )),
    }
}

fn system_bundle() -> Option<String> {
    let env = std::env::var("SSL_CERT_FILE").ok();
    env.into_iter()
        .chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/cert.pem",
            ]
            .map(String::from),
        )
        .find(|p| std::path::Path::new(p).is_file())
}

/// `*-tls-skip-verify=true`: the user chose to accept any certificate (signatures are still
/// checked, so the handshake itself stays sound).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::policy::Policy;
    use crate::plugin::{Capabilities, Grants};
    use std::net::TcpListener;

    fn state_for(opts: &[(&str, &str)]) -> HostState {
        let needs = Capabilities {
            log_dir: false,
            network: true,
            default_addresses: vec![],
            http_patterns: vec![],
            http: false,
            secrets: vec![],
        };
        let opts: Vec<(String, String)> = opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::plugin::state::test_state(Policy::new(&needs, &Grants::all(), &opts, false))
    }

    #[test]
    fn tcp_to_a_named_address_round_trips_and_others_are_denied() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0; 5];
            s.read_exact(&mut b).unwrap();
            s.write_all(b"pong").unwrap();
            b
        });
        let mut st = state_for(&[("fluentd-address", &format!("127.0.0.1:{port}"))]);
        let c = HostConn::open(&mut st, format!("tcp://127.0.0.1:{port}"), None, 1000).unwrap();
        let rep = c.rep();
        HostConn::send(&mut st, Resource::new_borrow(rep), b"ping!".to_vec()).unwrap();
        let got = HostConn::recv(&mut st, Resource::new_borrow(rep), 16, 2000).unwrap();
        assert_eq!(got, b"pong");
        assert_eq!(&server.join().unwrap(), b"ping!");
        HostConn::drop(&mut st, c).unwrap();

        let err = HostConn::open(&mut st, "tcp://127.0.0.1:22".into(), None, 1000)
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(&err, Error::Denied(m) if m.contains("127.0.0.1:22")),
            "{err:?}"
        );
    }

    #[test]
    fn tls_files_not_named_by_options_are_refused() {
        let mut st = state_for(&[("syslog-address", "tcp+tls://127.0.0.1:6514")]);
        let tls = TlsConfig {
            ca_file: Some("/etc/passwd".into()),
            cert_file: None,
            key_file: None,
            skip_verify: false,
        };
        // Refused before any connection is attempted (nothing listens on 6514 here).
        let err = HostConn::open(&mut st, "tls://127.0.0.1:6514".into(), Some(tls), 500)
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(&err, Error::Denied(m) if m.contains("/etc/passwd")),
            "{err:?}"
        );
    }
}
