//! Delivers batches to a forward-protocol server: one buffer per batch, or with
//! fluentd-request-ack one event at a time, each waiting for its `{"ack": chunk}`. A
//! failure gets one fresh connection and one resend; after that the batch is the host's
//! to retry (it owns backoff and buffering).

use std::time::{Duration, Instant};

use burrow_plugin_sdk::log::Entry;
use thiserror::Error;

use crate::msgpack::{self, AckError, Encoder};

/// A connection's failure as the host (or the OS) words it.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{message}")]
pub struct TransportError {
    pub message: String,
}

pub trait Transport {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError>;
    /// Up to `max` bytes; empty on timeout; an error once the peer closed.
    fn recv(&mut self, max: usize, timeout: Duration) -> Result<Vec<u8>, TransportError>;
}

pub trait Connector {
    type Conn: Transport;
    fn connect(&mut self) -> Result<Self::Conn, TransportError>;
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SendError {
    #[error("cannot connect to the fluentd server at {address}")]
    Connect {
        address: String,
        #[source]
        source: TransportError,
    },
    #[error("cannot write to the fluentd server at {address}")]
    Write {
        address: String,
        #[source]
        source: TransportError,
    },
    #[error("no ack from the fluentd server at {address} within {timeout:?}")]
    AckTimeout { address: String, timeout: Duration },
    #[error("the fluentd server at {address} acked chunk {got:?}, expected {want}")]
    AckMismatch {
        address: String,
        want: String,
        got: Option<String>,
    },
    #[error("bad ack from the fluentd server at {address}")]
    AckDecode {
        address: String,
        #[source]
        source: AckError,
    },
    #[error("the fluentd server at {address} closed the connection before acking")]
    AckClosed {
        address: String,
        #[source]
        source: TransportError,
    },
}

/// Which part of a failed batch already reached the server, so that the host's retry of
/// the same batch does not deliver it twice.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Resume {
    key: Option<(u64, usize, usize)>,
    done: usize,
}

fn batch_key(batch: &[Entry]) -> Option<(u64, usize, usize)> {
    batch
        .first()
        .map(|e| (e.time_ns, e.line.len(), batch.len()))
}

pub struct Sender<C: Connector> {
    connector: C,
    /// For messages only: the connector knows where it dials.
    address: String,
    conn: Option<C::Conn>,
    encoder: Encoder,
    /// Some: request acks, waiting this long for each.
    ack_timeout: Option<Duration>,
    /// 16 fresh random bytes per acked event.
    chunk_id: Box<dyn FnMut() -> [u8; 16]>,
    resume: Resume,
}

impl<C: Connector> Sender<C> {
    pub fn new(
        connector: C,
        address: String,
        encoder: Encoder,
        ack_timeout: Option<Duration>,
        chunk_id: Box<dyn FnMut() -> [u8; 16]>,
    ) -> Self {
        Sender {
            connector,
            address,
            conn: None,
            encoder,
            ack_timeout,
            chunk_id,
            resume: Resume::default(),
        }
    }

    /// Connects now (fluentd-async=false does so when the container starts).
    pub fn connect(&mut self) -> Result<(), SendError> {
        let conn = self.dial()?;
        self.conn = Some(conn);
        Ok(())
    }

    fn dial(&mut self) -> Result<C::Conn, SendError> {
        self.connector
            .connect()
            .map_err(|source| SendError::Connect {
                address: self.address.clone(),
                source,
            })
    }

    pub fn write(&mut self, batch: &[Entry]) -> Result<(), SendError> {
        let key = batch_key(batch);
        let skip = if key.is_some() && self.resume.key == key {
            self.resume.done.min(batch.len())
        } else {
            0
        };
        let result = match self.ack_timeout {
            None => {
                let mut buf = Vec::new();
                for e in &batch[skip..] {
                    self.encoder.encode(e, None, &mut buf);
                }
                if buf.is_empty() {
                    Ok(())
                } else {
                    self.attempt_twice(&buf, None).map_err(|e| (skip, e))
                }
            }
            Some(_) => {
                let mut outcome = Ok(());
                for (i, e) in batch.iter().enumerate().skip(skip) {
                    let chunk = base64_std(&(self.chunk_id)());
                    let mut buf = Vec::new();
                    self.encoder.encode(e, Some(&chunk), &mut buf);
                    if let Err(err) = self.attempt_twice(&buf, Some(&chunk)) {
                        outcome = Err((i, err));
                        break;
                    }
                }
                outcome
            }
        };
        match result {
            Ok(()) => {
                self.resume = Resume::default();
                Ok(())
            }
            Err((done, e)) => {
                self.resume = Resume { key, done };
                Err(e)
            }
        }
    }

    /// Two tries, the second on a fresh connection; a refused dial ends it at once.
    fn attempt_twice(&mut self, buf: &[u8], chunk: Option<&str>) -> Result<(), SendError> {
        let mut outcome = Ok(());
        for _ in 0..2 {
            if self.conn.is_none() {
                self.conn = Some(self.dial()?);
            }
            outcome = self.attempt(buf, chunk);
            if outcome.is_ok() {
                return outcome;
            }
            self.conn = None;
        }
        outcome
    }

    fn attempt(&mut self, buf: &[u8], chunk: Option<&str>) -> Result<(), SendError> {
        let address = self.address.clone();
        let conn = self.conn.as_mut().expect("connected before an attempt");
        conn.send(buf).map_err(|source| SendError::Write {
            address: address.clone(),
            source,
        })?;
        let (Some(want), Some(timeout)) = (chunk, self.ack_timeout) else {
            return Ok(());
        };
        let deadline = Instant::now() + timeout;
        let mut reply = Vec::new();
        loop {
            if let Some((got, _)) =
                msgpack::decode_ack(&reply).map_err(|source| SendError::AckDecode {
                    address: address.clone(),
                    source,
                })?
            {
                return if got.as_deref() == Some(want) {
                    Ok(())
                } else {
                    Err(SendError::AckMismatch {
                        address,
                        want: want.to_string(),
                        got,
                    })
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SendError::AckTimeout { address, timeout });
            }
            let data = conn
                .recv(4096, left)
                .map_err(|source| SendError::AckClosed {
                    address: address.clone(),
                    source,
                })?;
            reply.extend_from_slice(&data);
        }
    }
}

/// Standard base64 with padding (the chunk ids fluent-logger-golang sends).
pub fn base64_std(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_plugin_sdk::log::Source;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;

    /// What the fake server does with the next event.
    #[derive(Clone, Copy, Debug)]
    enum Reply {
        Ack,
        WrongAck,
        Silent,
        FailSend,
    }

    #[derive(Default)]
    struct Wire {
        sent: Vec<Vec<u8>>,
        connects: usize,
        refuse: bool,
        script: VecDeque<Reply>,
        pending: Vec<u8>,
    }

    struct FakeConn(Rc<RefCell<Wire>>);
    impl Transport for FakeConn {
        fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
            let mut w = self.0.borrow_mut();
            let reply = w.script.pop_front().unwrap_or(Reply::Ack);
            if let Reply::FailSend = reply {
                return Err(TransportError {
                    message: "write: broken pipe".into(),
                });
            }
            w.sent.push(data.to_vec());
            // The chunk is the last string of the event: find it after "chunk".
            let pos = data.windows(6).rposition(|x| x == b"\xa5chunk");
            if let Some(p) = pos {
                let chunk = &data[p + 6..];
                let mut ack = vec![0x81, 0xa3, b'a', b'c', b'k'];
                match reply {
                    Reply::Ack => ack.extend_from_slice(chunk),
                    Reply::WrongAck => ack.extend_from_slice(b"\xa1X"),
                    _ => ack.clear(),
                }
                // Deliver the reply in two pieces to exercise reassembly.
                w.pending.extend(ack);
            }
            Ok(())
        }
        fn recv(&mut self, max: usize, _timeout: Duration) -> Result<Vec<u8>, TransportError> {
            let mut w = self.0.borrow_mut();
            let n = w.pending.len().min(max).min(3);
            Ok(w.pending.drain(..n).collect())
        }
    }

    struct FakeConnector(Rc<RefCell<Wire>>);
    impl Connector for FakeConnector {
        type Conn = FakeConn;
        fn connect(&mut self) -> Result<FakeConn, TransportError> {
            let mut w = self.0.borrow_mut();
            w.connects += 1;
            w.pending.clear();
            if w.refuse {
                return Err(TransportError {
                    message: "dial tcp 127.0.0.1:24224: connect: connection refused".into(),
                });
            }
            Ok(FakeConn(self.0.clone()))
        }
    }

    fn encoder() -> Encoder {
        Encoder {
            tag: "t".into(),
            container_id: "c".into(),
            container_name: "/n".into(),
            attrs: vec![],
            sub_second: false,
        }
    }

    fn entry(line: &str) -> Entry {
        Entry {
            time_ns: 1_000_000_000,
            source: Source::Stdout,
            line: line.as_bytes().to_vec(),
            partial: None,
            attrs: vec![],
        }
    }

    fn sender(wire: &Rc<RefCell<Wire>>, ack: bool) -> Sender<FakeConnector> {
        let mut n = 0u8;
        Sender::new(
            FakeConnector(wire.clone()),
            "tcp://127.0.0.1:24224".into(),
            encoder(),
            ack.then_some(Duration::from_millis(50)),
            Box::new(move || {
                n += 1;
                [n; 16]
            }),
        )
    }

    #[test]
    fn without_ack_a_batch_is_one_send_of_message_mode_events() {
        let wire = Rc::new(RefCell::new(Wire::default()));
        let mut s = sender(&wire, false);
        s.connect().unwrap();
        s.write(&[entry("a"), entry(""), entry("b")]).unwrap();
        let w = wire.borrow();
        assert_eq!(w.sent.len(), 1);
        let mut want = vec![];
        for l in ["a", "", "b"] {
            encoder().encode(&entry(l), None, &mut want);
        }
        assert_eq!(
            w.sent[0], want,
            "empty lines are kept, as Docker's fluentd does"
        );
    }

    #[test]
    fn with_ack_each_event_waits_for_its_chunk() {
        let wire = Rc::new(RefCell::new(Wire::default()));
        let mut s = sender(&wire, true);
        s.write(&[entry("a"), entry("b")]).unwrap();
        let w = wire.borrow();
        assert_eq!(w.sent.len(), 2);
        assert_eq!(w.connects, 1);
        let chunk = base64_std(&[1u8; 16]);
        assert!(w.sent[0].ends_with(chunk.as_bytes()));
    }

    #[test]
    fn wrong_or_missing_ack_resends_once_on_a_new_connection() {
        let wire = Rc::new(RefCell::new(Wire::default()));
        let mut s = sender(&wire, true);
        wire.borrow_mut().script = [Reply::WrongAck, Reply::Ack].into();
        s.write(&[entry("a")]).unwrap();
        {
            let w = wire.borrow();
            assert_eq!(w.connects, 2);
            assert_eq!(w.sent.len(), 2);
            assert_eq!(w.sent[0], w.sent[1], "the resend carries the same chunk");
        }
        wire.borrow_mut().script = [Reply::Silent, Reply::Silent].into();
        let e = s.write(&[entry("b")]).unwrap_err();
        assert!(matches!(e, SendError::AckTimeout { .. }), "{e:?}");
        assert_eq!(wire.borrow().connects, 3);
    }

    #[test]
    fn refused_connection_keeps_the_transport_text() {
        let wire = Rc::new(RefCell::new(Wire::default()));
        wire.borrow_mut().refuse = true;
        let mut s = sender(&wire, false);
        let e = s.connect().unwrap_err();
        let SendError::Connect { source, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(
            source.message,
            "dial tcp 127.0.0.1:24224: connect: connection refused"
        );
        assert!(s.write(&[entry("a")]).is_err());
    }

    #[test]
    fn retried_batch_skips_acked_events() {
        let wire = Rc::new(RefCell::new(Wire::default()));
        let mut s = sender(&wire, true);
        let batch = [entry("a"), entry("b"), entry("c")];
        wire.borrow_mut().script = [Reply::Ack, Reply::FailSend, Reply::FailSend].into();
        assert!(s.write(&batch).is_err());
        assert_eq!(wire.borrow().sent.len(), 1);
        s.write(&batch).unwrap();
        let w = wire.borrow();
        assert_eq!(w.sent.len(), 3, "a is not sent again");
        assert!(w.sent[1].windows(2).any(|x| x == b"\xa1b"));
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64_std(b""), "");
        assert_eq!(base64_std(b"f"), "Zg==");
        assert_eq!(base64_std(b"fo"), "Zm8=");
        assert_eq!(base64_std(b"foobar"), "Zm9vYmFy");
        assert_eq!(
            base64_std(&[
                0xa6, 0x9e, 0x02, 0x6b, 0, 0, 0, 0, 0x10, 0x31, 0x8b, 0x96, 0x52, 0x1e, 0x35, 0xfd
            ]),
            "pp4CawAAAAAQMYuWUh41/Q=="
        );
    }
}
