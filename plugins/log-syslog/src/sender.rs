//! Delivers batches: renders and frames each entry, sends over a [`Transport`] and, like
//! srslog, reconnects once after a failed write before giving up.

use burrow_plugin_sdk::log::resume::Resume;
use burrow_plugin_sdk::log::{Entry, Source};
use thiserror::Error;

use crate::format::{Framing, Header, SEVERITY_ERR, SEVERITY_INFO};

/// A connection's failure as the host (or the OS) words it, e.g.
/// "dial tcp 127.0.0.1:5514: connect: connection refused".
pub use burrow_plugin_sdk::log::TransportError;

/// An open connection to the syslog server.
pub trait Transport {
    /// Writes all of `data`; one datagram on udp and unixgram.
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError>;
}

/// Opens connections to one of the configured endpoint addresses
/// (`udp://h:p`, `tcp://h:p`, `unix:///p`, `unixgram:///p`).
pub trait Connector {
    type Conn: Transport;
    fn connect(&mut self, address: &str) -> Result<Self::Conn, TransportError>;
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SendError {
    #[error("cannot connect to the syslog server at {address}")]
    Connect {
        address: String,
        #[source]
        source: TransportError,
    },
    /// srslog's message when neither local socket answers.
    #[error("Unix syslog delivery error")]
    NoLocalSyslog {
        #[source]
        source: TransportError,
    },
    #[error("cannot write to the syslog server at {address}")]
    Write {
        address: String,
        #[source]
        source: TransportError,
    },
}

impl SendError {
    /// The underlying connection error, for messages in Docker's shape.
    pub fn transport(&self) -> &TransportError {
        match self {
            SendError::Connect { source, .. }
            | SendError::NoLocalSyslog { source }
            | SendError::Write { source, .. } => source,
        }
    }
}

pub struct Sender<C: Connector> {
    connector: C,
    endpoints: Vec<String>,
    conn: Option<C::Conn>,
    header: Header,
    framing: Framing,
    datagram: bool,
    resume: Resume,
}

impl<C: Connector> Sender<C> {
    /// `endpoints` are tried in order (several only for the local syslog socket).
    pub fn new(
        connector: C,
        endpoints: Vec<String>,
        header: Header,
        framing: Framing,
        datagram: bool,
    ) -> Self {
        Sender {
            connector,
            endpoints,
            conn: None,
            header,
            framing,
            datagram,
            resume: Resume::default(),
        }
    }

    /// Dials now, as Docker does when the container starts.
    pub fn connect(&mut self) -> Result<(), SendError> {
        let conn = self.dial()?;
        self.conn = Some(conn);
        Ok(())
    }

    fn dial(&mut self) -> Result<C::Conn, SendError> {
        let mut last = None;
        for address in &self.endpoints {
            match self.connector.connect(address) {
                Ok(conn) => return Ok(conn),
                Err(source) => last = Some((address.clone(), source)),
            }
        }
        let (address, source) =
            last.unwrap_or_else(|| (String::new(), TransportError::new("no syslog address")));
        if self.endpoints.len() > 1 {
            Err(SendError::NoLocalSyslog { source })
        } else {
            Err(SendError::Connect { address, source })
        }
    }

    /// The bytes one entry becomes on the wire; none for an empty line (Docker drops those).
    /// Every chunk of a long line is its own message, as in Docker.
    pub fn frame(&self, entry: &Entry) -> Option<Vec<u8>> {
        if entry.line.is_empty() {
            return None;
        }
        let severity = match entry.source {
            Source::Stdout => SEVERITY_INFO,
            Source::Stderr => SEVERITY_ERR,
        };
        let msg = self.header.render(severity, entry.time_ns, &entry.line);
        Some(self.framing.frame(msg))
    }

    /// Sends the batch: one datagram per message, or one buffer on a stream.
    pub fn write(&mut self, batch: &[Entry]) -> Result<(), SendError> {
        // What an earlier failed call with this batch already sent is not sent twice.
        let skip = self.resume.skip(batch);
        let result = if self.datagram {
            let mut failed = None;
            for (i, entry) in batch.iter().enumerate().skip(skip) {
                if let Some(frame) = self.frame(entry) {
                    if let Err(e) = self.send(&frame) {
                        failed = Some((i, e));
                        break;
                    }
                }
            }
            match failed {
                None => Ok(()),
                Some((i, e)) => {
                    self.resume.failed(batch, i);
                    return Err(e);
                }
            }
        } else {
            let buf: Vec<u8> = batch[skip..]
                .iter()
                .filter_map(|e| self.frame(e))
                .flatten()
                .collect();
            if buf.is_empty() {
                Ok(())
            } else {
                self.send(&buf)
            }
        };
        match result {
            Ok(()) => {
                self.resume.clear();
                Ok(())
            }
            Err(e) => {
                self.resume.failed(batch, skip);
                Err(e)
            }
        }
    }

    /// One write; on failure a fresh connection and one more write (srslog's writeAndRetry).
    fn send(&mut self, data: &[u8]) -> Result<(), SendError> {
        if let Some(conn) = self.conn.as_mut() {
            match conn.send(data) {
                Ok(()) => return Ok(()),
                Err(_) => self.conn = None,
            }
        }
        let mut conn = self.dial()?;
        conn.send(data).map_err(|source| SendError::Write {
            address: self.endpoints.first().cloned().unwrap_or_default(),
            source,
        })?;
        self.conn = Some(conn);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Format;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Records what was sent; fails the sends and connects it is told to.
    #[derive(Default)]
    struct Wire {
        sent: Vec<Vec<u8>>,
        connects: Vec<String>,
        fail_sends: Vec<bool>,
        refuse: Vec<String>,
    }

    struct FakeConn(Rc<RefCell<Wire>>);
    impl Transport for FakeConn {
        fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
            let mut w = self.0.borrow_mut();
            let fail = if w.fail_sends.is_empty() {
                false
            } else {
                w.fail_sends.remove(0)
            };
            if fail {
                return Err(TransportError {
                    message: "write: broken pipe".into(),
                });
            }
            w.sent.push(data.to_vec());
            Ok(())
        }
    }

    struct FakeConnector(Rc<RefCell<Wire>>);
    impl Connector for FakeConnector {
        type Conn = FakeConn;
        fn connect(&mut self, address: &str) -> Result<FakeConn, TransportError> {
            let mut w = self.0.borrow_mut();
            w.connects.push(address.to_string());
            if w.refuse.iter().any(|a| a == address) {
                return Err(TransportError {
                    message: format!("dial {address}: connect: connection refused"),
                });
            }
            Ok(FakeConn(self.0.clone()))
        }
    }

    fn header() -> Header {
        Header {
            facility: 3,
            format: Format::Unix,
            hostname: "vm".into(),
            tag: "abc".into(),
            pid: 7,
            utc_offset_secs: 0,
        }
    }

    fn entry(line: &str, source: Source) -> Entry {
        Entry {
            time_ns: 0,
            source,
            line: line.as_bytes().to_vec(),
            partial: None,
            attrs: vec![],
        }
    }

    fn sender(
        wire: &Rc<RefCell<Wire>>,
        endpoints: &[&str],
        datagram: bool,
    ) -> Sender<FakeConnector> {
        Sender::new(
            FakeConnector(wire.clone()),
            endpoints.iter().map(|s| s.to_string()).collect(),
            header(),
            Framing::Plain,
            datagram,
        )
    }

    #[test]
    fn datagrams_one_per_message_and_empty_lines_dropped() {
        let wire = Rc::new(RefCell::new(Wire::default()));
        let mut s = sender(&wire, &["udp://h:1"], true);
        s.connect().unwrap();
        s.write(&[
            entry("a", Source::Stdout),
            entry("", Source::Stdout),
            entry("b", Source::Stderr),
        ])
        .unwrap();
        let w = wire.borrow();
        assert_eq!(
            w.sent,
            [
                b"<30>Jan  1 00:00:00 abc[7]: a\n".to_vec(),
                b"<27>Jan  1 00:00:00 abc[7]: b\n".to_vec()
            ]
        );
    }

    #[test]
    fn stream_batch_is_one_newline_delimited_buffer() {
        let wire = Rc::new(RefCell::new(Wire::default()));
        let mut s = sender(&wire, &["tcp://h:1"], false);
        s.write(&[entry("a", Source::Stdout), entry("b", Source::Stdout)])
            .unwrap();
        let w = wire.borrow();
        assert_eq!(
            w.sent,
            [b"<30>Jan  1 00:00:00 abc[7]: a\n<30>Jan  1 00:00:00 abc[7]: b\n".to_vec()]
        );
        assert_eq!(
            w.connects,
            ["tcp://h:1"],
            "dials lazily when not yet connected"
        );
    }

    #[test]
    fn write_error_reconnects_once_then_fails() {
        let wire = Rc::new(RefCell::new(Wire::default()));
        let mut s = sender(&wire, &["tcp://h:1"], false);
        s.connect().unwrap();
        wire.borrow_mut().fail_sends = vec![true];
        s.write(&[entry("a", Source::Stdout)]).unwrap();
        assert_eq!(wire.borrow().connects.len(), 2);
        assert_eq!(wire.borrow().sent.len(), 1);

        wire.borrow_mut().fail_sends = vec![true, true];
        let e = s.write(&[entry("b", Source::Stdout)]).unwrap_err();
        assert!(matches!(e, SendError::Write { .. }), "{e:?}");
        assert_eq!(e.transport().message, "write: broken pipe");
        assert_eq!(wire.borrow().connects.len(), 3, "exactly one reconnect");
    }

    #[test]
    fn connect_refused_is_reported_with_the_transport_text() {
        let wire = Rc::new(RefCell::new(Wire::default()));
        wire.borrow_mut().refuse = vec!["tcp://h:1".into()];
        let mut s = sender(&wire, &["tcp://h:1"], false);
        let e = s.connect().unwrap_err();
        assert_eq!(
            e.transport().message,
            "dial tcp://h:1: connect: connection refused"
        );
    }

    #[test]
    fn local_socket_falls_back_from_unixgram_to_unix() {
        let wire = Rc::new(RefCell::new(Wire::default()));
        wire.borrow_mut().refuse = vec!["unixgram:///dev/log".into()];
        let mut s = sender(&wire, &["unixgram:///dev/log", "unix:///dev/log"], false);
        s.connect().unwrap();
        assert_eq!(
            wire.borrow().connects,
            ["unixgram:///dev/log", "unix:///dev/log"]
        );
        wire.borrow_mut().refuse.push("unix:///dev/log".into());
        let mut s = sender(&wire, &["unixgram:///dev/log", "unix:///dev/log"], false);
        assert_eq!(
            s.connect().unwrap_err().to_string(),
            "Unix syslog delivery error"
        );
    }

    #[test]
    fn retried_batch_skips_datagrams_already_delivered() {
        let wire = Rc::new(RefCell::new(Wire::default()));
        let mut s = sender(&wire, &["udp://h:1"], true);
        let batch = [
            entry("a", Source::Stdout),
            entry("b", Source::Stdout),
            entry("c", Source::Stdout),
        ];
        // "a" goes out, "b" fails twice (the reconnect included).
        wire.borrow_mut().fail_sends = vec![false, true, true];
        assert!(s.write(&batch).is_err());
        s.write(&batch).unwrap();
        let sent: Vec<String> = wire
            .borrow()
            .sent
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert!(
            sent[0].ends_with(": a\n") && sent[1].ends_with(": b\n") && sent[2].ends_with(": c\n")
        );
        // A different batch starts from its beginning.
        s.write(&[entry("d", Source::Stdout)]).unwrap();
        assert_eq!(wire.borrow().sent.len(), 4);
    }
}
