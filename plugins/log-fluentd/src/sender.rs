//! Delivers batches to a forward-protocol server as fluent-logger-golang v1.9 (dockerd's
//! client) does, but within the host's 5 s per call: its sleeps between attempts become
//! state kept between calls ([`Backoff`]), and fluentd-async's queue a bounded buffer that
//! later calls drain ([`Pending`]). The crate docs give the semantics a user sees.

use std::time::{Duration, Instant};

use burrow_plugin_sdk::go as goparse;
use burrow_plugin_sdk::log::Entry;
use burrow_plugin_sdk::log::resume::Resume;
use thiserror::Error;

use crate::buffer::{Pending, Record};
use crate::msgpack::{self, AckError, Encoder};
use crate::retry::{Backoff, Clock, Next, RetryPolicy, SystemClock};

/// With fluentd-async, a call starts no new send after this long, so that draining a full
/// buffer (one acked event at a time) stays well within the host's 5 s deadline.
pub const DRAIN_BUDGET: Duration = Duration::from_secs(1);

/// A connection's failure as the host (or the OS) words it.
pub use burrow_plugin_sdk::log::TransportError;
/// The error and its sources, joined with ": ", as the user reads it.
pub use burrow_plugin_sdk::log::chain;

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
    /// The backoff after a failed attempt has not passed: nothing was tried.
    #[error("the fluentd server at {address} is unavailable; next attempt in {}", go_duration(*wait))]
    Waiting {
        address: String,
        wait: Duration,
        /// Why the last attempt failed.
        #[source]
        last: TransportError,
    },
    /// fluentd-max-retries consecutive attempts failed: the data is given up, and with
    /// fluentd-async so is every buffered event (`dropped` of them).
    #[error("fluent#write: failed to write after {attempts} attempts{}", dropped_note(*dropped))]
    GaveUp {
        attempts: u32,
        dropped: usize,
        #[source]
        source: Box<SendError>,
    },
    /// fluentd-async: the batch does not fit in what is left of fluentd-buffer-limit.
    #[error("fluent#appendBuffer: Buffer full, limit {limit}")]
    BufferFull {
        limit: usize,
        /// Why events are waiting, when an attempt failed.
        #[source]
        source: Option<Box<SendError>>,
    },
}

impl SendError {
    /// True when the data is given up for good: the host must count it as lost rather
    /// than offer it again.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            SendError::GaveUp { .. } | SendError::BufferFull { .. }
        )
    }
}

/// Go's rendering of a wait, rounded up to the millisecond ("1.5s", "250ms").
fn go_duration(d: Duration) -> String {
    let ms = d.as_nanos().div_ceil(1_000_000);
    goparse::duration_string(i64::try_from(ms * 1_000_000).unwrap_or(i64::MAX))
}

fn dropped_note(dropped: usize) -> String {
    match dropped {
        0 => String::new(),
        n => format!(" (dropped {n} buffered events)"),
    }
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
    /// Synchronous mode: what the host's retry of a failed batch skips.
    resume: Resume,
    backoff: Backoff,
    /// Some with fluentd-async.
    pending: Option<Pending>,
    clock: Box<dyn Clock>,
}

impl<C: Connector> Sender<C> {
    /// A synchronous sender with Docker's retry defaults and the system clock.
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
            backoff: Backoff::new(RetryPolicy::default()),
            pending: None,
            clock: Box::new(SystemClock),
        }
    }

    /// fluentd-retry-wait and fluentd-max-retries.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.backoff = Backoff::new(policy);
        self
    }

    /// fluentd-async: writes never wait for the server; up to `limit` bytes of encoded
    /// events wait in a buffer instead.
    pub fn with_async_buffer(mut self, limit: usize) -> Self {
        self.pending = Some(Pending::new(limit));
        self
    }

    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// The fluentd-async buffer.
    pub fn pending(&self) -> Option<&Pending> {
        self.pending.as_ref()
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

    /// Delivers a batch. Synchronous: an error means the host should offer the batch
    /// again, unless [`SendError::is_final`]. fluentd-async: the batch is sent or
    /// buffered, and only a final error is returned.
    pub fn write(&mut self, batch: &[Entry]) -> Result<(), SendError> {
        match self.pending.take() {
            Some(mut pending) => {
                let result = self.write_async(&mut pending, batch);
                self.pending = Some(pending);
                result
            }
            None => self.write_sync(batch),
        }
    }

    /// fluentd-async: sends buffered events when the backoff allows. Synchronous: nothing
    /// to do.
    pub fn flush(&mut self) -> Result<(), SendError> {
        let Some(mut pending) = self.pending.take() else {
            return Ok(());
        };
        let start = self.clock.now();
        let result = self
            .send_queue(&mut pending, start)
            .map_err(|e| give_up_buffer(e, &mut pending));
        self.pending = Some(pending);
        result
    }

    /// Each event as it goes on the wire, with a fresh chunk id when acks are requested.
    fn records(&mut self, entries: &[Entry]) -> Vec<Record> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let chunk = self.ack_timeout.map(|_| base64_std(&(self.chunk_id)()));
            let mut data = Vec::new();
            self.encoder.encode(e, chunk.as_deref(), &mut data);
            out.push(Record { data, chunk });
        }
        out
    }

    fn write_sync(&mut self, batch: &[Entry]) -> Result<(), SendError> {
        let skip = self.resume.skip(batch);
        let records = self.records(&batch[skip..]);
        let mut done = skip;
        let result = if self.ack_timeout.is_some() {
            records.iter().try_for_each(|r| {
                self.deliver(&r.data, r.chunk.as_deref())?;
                done += 1;
                Ok(())
            })
        } else if records.is_empty() {
            Ok(())
        } else {
            let buf: Vec<u8> = records.into_iter().flat_map(|r| r.data).collect();
            self.deliver(&buf, None)
        };
        match result {
            Err(e) if !e.is_final() => {
                self.resume.failed(batch, done);
                Err(e)
            }
            other => {
                self.resume.clear();
                other
            }
        }
    }

    /// Older events first: the batch is sent only once the buffer is empty, and whatever
    /// of it is not sent joins the buffer whole or not at all.
    fn write_async(&mut self, pending: &mut Pending, batch: &[Entry]) -> Result<(), SendError> {
        let start = self.clock.now();
        let mut fresh = Pending::new(usize::MAX);
        if fresh.push_all(self.records(batch)).is_err() {
            unreachable!("an unbounded buffer takes everything");
        }
        let mut outcome = self.send_queue(pending, start);
        if outcome.is_ok() && pending.is_empty() {
            outcome = self.send_queue(&mut fresh, start);
        }
        let why = match outcome {
            Ok(()) if fresh.is_empty() => return Ok(()),
            Ok(()) => None,
            Err(e) if e.is_final() => return Err(give_up_buffer(e, pending)),
            Err(e) => Some(Box::new(e)),
        };
        pending
            .push_all(fresh.into_records())
            .map_err(|_| SendError::BufferFull {
                limit: pending.limit(),
                source: why,
            })
    }

    /// Sends from the front of `queue` until it is empty, an attempt fails, or the call
    /// has spent [`DRAIN_BUDGET`].
    fn send_queue(&mut self, queue: &mut Pending, start: Instant) -> Result<(), SendError> {
        while let Some((data, chunk, n)) = queue.next_send() {
            if self.clock.now().saturating_duration_since(start) >= DRAIN_BUDGET {
                break;
            }
            self.deliver(&data, chunk.as_deref())?;
            queue.delivered(n);
        }
        Ok(())
    }

    /// One attempt at one send, paced by the backoff: on the live connection or a new
    /// one, and when that connection breaks (a failed send, a wrong or missing ack) once
    /// more at once on a new one, as fluent-logger-golang redials after a failed write. A
    /// refused dial ends the attempt. A failed attempt starts the next wait, or gives up
    /// after fluentd-max-retries of them.
    fn deliver(&mut self, data: &[u8], chunk: Option<&str>) -> Result<(), SendError> {
        let wait = match self.conn {
            Some(_) => None,
            None => self.backoff.wait_left(self.clock.now()),
        };
        if let Some(wait) = wait {
            return Err(SendError::Waiting {
                address: self.address.clone(),
                wait,
                last: TransportError {
                    message: self.backoff.last_error().to_string(),
                },
            });
        }
        let mut outcome = Ok(());
        for _ in 0..2 {
            if self.conn.is_none() {
                match self.dial() {
                    Ok(conn) => self.conn = Some(conn),
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
            outcome = self.attempt(data, chunk);
            if outcome.is_ok() {
                break;
            }
            self.conn = None;
        }
        let Err(e) = outcome else {
            self.backoff.succeeded();
            return Ok(());
        };
        match self.backoff.failed(self.clock.now(), chain(&e)) {
            Next::RetryIn(_) => Err(e),
            Next::GiveUp(attempts) => Err(SendError::GaveUp {
                attempts,
                dropped: 0,
                source: Box::new(e),
            }),
        }
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
        let deadline = self.clock.now() + timeout;
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
            let left = deadline.saturating_duration_since(self.clock.now());
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

/// fluentd-max-retries ran out with events buffered: they go too (fluent-logger-golang
/// drops an event once its retries run out). The host counted their lines as delivered
/// when they were buffered, so these losses are not in its count: a known gap.
fn give_up_buffer(e: SendError, pending: &mut Pending) -> SendError {
    match e {
        SendError::GaveUp {
            attempts, source, ..
        } => SendError::GaveUp {
            attempts,
            dropped: pending.clear(),
            source,
        },
        other => other,
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
#[path = "sender_tests.rs"]
mod tests;
