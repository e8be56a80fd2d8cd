//! The `fluentd` log driver: Docker's forward-protocol records (Message mode, one event
//! per line) over tcp, tls or a unix socket, with optional acks. Encoding and delivery
//! live in plain modules; this file only binds them to the WIT world.
//!
//! # Retries, backoff and buffering
//!
//! As Docker's driver (fluent-logger-golang v1.9, in dockerd 20.10 and later), except that
//! nothing sleeps inside a call: the host gives each `write` 5 s, so the waits between
//! attempts are kept as state between calls.
//!
//! - **Attempts.** An attempt sends one batch (with fluentd-request-ack, one event, which
//!   then waits up to 2 s for its ack). When its connection breaks (a send fails, an ack is
//!   wrong or missing) it reconnects and sends once more at once; a refused dial, or a
//!   second failure, fails the attempt.
//! - **Backoff.** After the n-th consecutive failed attempt the next one waits
//!   fluentd-retry-wait × 1.5^(n-1), at most 60 s (fluent-logger's MaxRetryWait).
//!   fluentd-retry-wait defaults to 1 s; under 1 ms means fluent-logger's 500 ms.
//!   (fluent-logger rounds 1.5^(n-1) down to a whole number; this driver does not.) A
//!   delivery resets the count. Without fluentd-async, a write that comes before the wait
//!   is over returns `unavailable` at once, without dialing, saying how long is left; the
//!   host keeps the batch and offers it again (its own backoff runs from 100 ms to 2 s),
//!   so real attempts follow this driver's backoff. An offered-again batch skips the acked
//!   events that an earlier call delivered.
//! - **fluentd-max-retries** (default 2147483647, math.MaxInt32; 0 means fluent-logger's
//!   13). After that many consecutive failed attempts the batch is given up: `write`
//!   returns `internal` with fluent-logger's "fluent#write: failed to write after N
//!   attempts", so that the host counts its lines as lost, and the count starts over.
//! - **fluentd-async.** Writes never wait for the server. While it is unavailable, a
//!   batch's encoded events go to a buffer of at most fluentd-buffer-limit bytes (default
//!   1 MiB, moby's defaultBufferLimit; 0 means fluent-logger's 8 KiB; fluent-logger counts
//!   events, this driver counts bytes so that its memory stays bounded) and `write` returns
//!   ok. A batch that does not fit whole is refused with `internal` ("fluent#appendBuffer:
//!   Buffer full, limit N"), so that the host counts its lines as lost. Buffered events go
//!   first, on the next `write` or `flush` that the backoff allows; a call starts no send
//!   after 1 s, leaving the rest for the next. When fluentd-max-retries runs out, the batch
//!   being written is refused as above and the buffer is dropped (the message says how many
//!   events).
//!
//! Known gaps in the host's count of lost lines: **events dropped from the fluentd-async
//! buffer are not counted** (the host counted them as delivered when they were buffered);
//! nor is a buffer left when the container stops (Docker discards it too:
//! ForceStopAsyncSend), or one lost with its instance after a trap or a timeout (the buffer
//! relies on the host keeping the instance after an error the plugin returns). With acks,
//! a batch that is given up, or refused by a full buffer, after some of its events were
//! acked is counted whole.

#![deny(unsafe_code)]

pub mod buffer;
pub mod msgpack;
pub mod options;
pub mod retry;
pub mod sender;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use burrow_plugin_sdk::log::driver::{LogDriver, Needs, Spec};
use burrow_plugin_sdk::log::endpoints::TlsConfig;
use burrow_plugin_sdk::log::host::{self, Conn};
use burrow_plugin_sdk::log::opts::Options;
use burrow_plugin_sdk::log::{Container, Entry, Error, line};

use msgpack::Encoder;
use options::{Config, DEFAULT_ADDRESS};
use retry::RetryPolicy;
use sender::{Connector, SendError, Sender, Transport, TransportError, chain};

/// fluent-logger-golang's default dial timeout.
const CONNECT_TIMEOUT_MS: u32 = 3000;
/// Docker waits for an ack without limit by default; a `write` call has 5 s, which must
/// hold a wait, a reconnect and a second wait.
const MAX_ACK_WAIT: Duration = Duration::from_secs(2);

/// Docker's record fields for this container; the tag defaults to the short id.
pub fn encoder(c: &Container, cfg: &Config) -> Encoder {
    Encoder {
        tag: line::tag_or_short_id(c),
        container_id: c.id.clone(),
        container_name: format!("/{}", c.name),
        attrs: c
            .attrs
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect(),
        sub_second: cfg.sub_second,
    }
}

/// fluentd-retry-wait and fluentd-max-retries.
pub fn retry_policy(cfg: &Config) -> RetryPolicy {
    RetryPolicy {
        wait: cfg.retry_wait,
        max_retries: cfg.max_retries,
    }
}

/// The WIT error for a failed delivery: `unavailable` while the host should offer the batch
/// again, `internal` once it is given up, so that the host counts its lines as lost.
pub fn wit_error(e: &SendError) -> Error {
    if e.is_final() {
        Error::Internal(chain(e))
    } else {
        Error::Unavailable(chain(e))
    }
}

/// How long to wait for each ack, when acks are requested.
pub fn ack_timeout(cfg: &Config) -> Option<Duration> {
    cfg.request_ack.then(|| {
        cfg.read_timeout
            .map_or(MAX_ACK_WAIT, |t| t.min(MAX_ACK_WAIT))
    })
}

/// 16 random bytes from WASI's random source (through std's hasher seeding), mixed with
/// a counter so that two ids never repeat within one logger.
fn random_chunk_id() -> Box<dyn FnMut() -> [u8; 16]> {
    let state = RandomState::new();
    let mut counter = 0u64;
    Box::new(move || {
        let mut out = [0u8; 16];
        for half in out.chunks_mut(8) {
            counter += 1;
            let mut h = state.build_hasher();
            h.write_u64(counter);
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
        out
    })
}

/// The driver: one sender per container.
pub struct FluentdDriver(Sender<HostConnector>);

impl LogDriver for FluentdDriver {
    const SPEC: Spec = Spec {
        name: "fluentd",
        description: "sends container output to fluentd (forward protocol, Docker's records)",
        needs: Needs::network(&[DEFAULT_ADDRESS]),
        options: options::OPTIONS,
    };

    type Config = Config;

    fn config(opts: &Options) -> Result<Config, Error> {
        options::from_options(opts).map_err(|e| Error::InvalidConfig(e.to_string()))
    }

    fn open(c: &Container, cfg: Config) -> Result<Self, Error> {
        // Docker's tls:// verifies against the system roots and has no options of its own.
        let tls = cfg.tls.then_some(TlsConfig {
            ca_file: None,
            cert_file: None,
            key_file: None,
            skip_verify: false,
        });
        let mut sender = Sender::new(
            HostConnector {
                address: cfg.endpoint.clone(),
                tls,
            },
            cfg.endpoint.clone(),
            encoder(c, &cfg),
            ack_timeout(&cfg),
            random_chunk_id(),
        )
        .with_retry(retry_policy(&cfg));
        if cfg.is_async {
            sender = sender.with_async_buffer(cfg.buffer_limit);
        } else {
            sender.connect().map_err(|e| {
                let source = match &e {
                    SendError::Connect { source, .. } => source.message.clone(),
                    other => other.to_string(),
                };
                Error::Unavailable(format!("failed to initialize logging driver: {source}"))
            })?;
        }
        Ok(FluentdDriver(sender))
    }

    fn write(&mut self, batch: Vec<Entry>) -> Result<(), Error> {
        self.0.write(&batch).map_err(|e| wit_error(&e))
    }

    /// Sends what fluentd-async buffered. The host only notes a failed flush, so a buffer
    /// dropped here is reported through `diag` too.
    fn flush(&mut self) -> Result<(), Error> {
        self.0.flush().map_err(|e| {
            if let SendError::GaveUp { dropped: 1.., .. } = e {
                host::warn(&chain(&e));
            }
            wit_error(&e)
        })
    }
}

/// The host's connections to the configured address.
pub struct HostConnector {
    address: String,
    tls: Option<TlsConfig>,
}

pub struct HostConn(Conn);

impl Transport for HostConn {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        Ok(self.0.send(data)?)
    }
    fn recv(&mut self, max: usize, timeout: Duration) -> Result<Vec<u8>, TransportError> {
        let ms = u32::try_from(timeout.as_millis())
            .unwrap_or(u32::MAX)
            .max(1);
        Ok(self.0.recv(u32::try_from(max).unwrap_or(u32::MAX), ms)?)
    }
}

impl Connector for HostConnector {
    type Conn = HostConn;
    fn connect(&mut self) -> Result<HostConn, TransportError> {
        Ok(HostConn(Conn::open(
            &self.address,
            self.tls.as_ref(),
            CONNECT_TIMEOUT_MS,
        )?))
    }
}

burrow_plugin_sdk::log_driver!(FluentdDriver);

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_plugin_sdk::log::{Guest, HostInfo, Kv};

    fn kv(k: &str, v: &str) -> Kv {
        Kv {
            key: k.into(),
            value: v.into(),
        }
    }

    fn container(tag: Option<&str>) -> Container {
        Container {
            id: "1de4280a76da0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4a22".into(),
            name: "fl1".into(),
            image_id: String::new(),
            image_name: "local/bb:1".into(),
            command: "sh".into(),
            hostname: "1de4280a76da".into(),
            created_ns: 0,
            tag: tag.map(str::to_string),
            attrs: vec![kv("team", "a")],
            host: HostInfo {
                hostname: "vm".into(),
                pid: 1,
                utc_offset_secs: 0,
            },
        }
    }

    #[test]
    fn validate_uses_dockers_messages() {
        assert!(FluentdDriver::validate(vec![kv("fluentd-async", "true"), kv("env", "A")]).is_ok());
        let e = FluentdDriver::validate(vec![kv("max-file", "2")]).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidConfig(m) if m == "unknown log opt 'max-file' for fluentd log driver"),
            "{e:?}"
        );
    }

    #[test]
    fn describe_asks_for_the_default_address() {
        let info = FluentdDriver::describe();
        assert_eq!(info.name, "fluentd");
        assert!(info.needs.network);
        assert_eq!(info.needs.default_addresses, ["tcp://127.0.0.1:24224"]);
    }

    #[test]
    fn record_fields_follow_docker() {
        let cfg = options::parse(&[]).unwrap();
        let e = encoder(&container(None), &cfg);
        assert_eq!(e.tag, "1de4280a76da");
        assert_eq!(e.container_name, "/fl1");
        assert_eq!(e.attrs, [("team".to_string(), "a".to_string())]);
        assert_eq!(
            encoder(&container(Some("docker.fl1")), &cfg).tag,
            "docker.fl1"
        );
    }

    #[test]
    fn ack_wait_is_bounded_by_the_call_deadline() {
        let parse = |kv: &[(&str, &str)]| {
            options::parse(
                &kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
            .unwrap()
        };
        assert_eq!(ack_timeout(&parse(&[])), None);
        assert_eq!(
            ack_timeout(&parse(&[("fluentd-request-ack", "true")])),
            Some(MAX_ACK_WAIT)
        );
        assert_eq!(
            ack_timeout(&parse(&[
                ("fluentd-request-ack", "true"),
                ("fluentd-read-timeout", "300ms")
            ])),
            Some(Duration::from_millis(300))
        );
    }

    #[test]
    fn only_given_up_data_is_an_error_the_host_counts_as_lost() {
        let refused = SendError::Connect {
            address: "tcp://127.0.0.1:24224".into(),
            source: TransportError {
                message: "connection refused".into(),
            },
        };
        let e = wit_error(&refused);
        assert!(
            matches!(&e, Error::Unavailable(m) if m == "cannot connect to the fluentd server at tcp://127.0.0.1:24224: connection refused"),
            "{e:?}"
        );
        let gave_up = SendError::GaveUp {
            attempts: 5,
            dropped: 0,
            source: Box::new(refused),
        };
        let e = wit_error(&gave_up);
        assert!(
            matches!(&e, Error::Internal(m) if m == "fluent#write: failed to write after 5 attempts: cannot connect to the fluentd server at tcp://127.0.0.1:24224: connection refused"),
            "{e:?}"
        );
        let full = SendError::BufferFull {
            limit: 1048576,
            source: None,
        };
        let e = wit_error(&full);
        assert!(
            matches!(&e, Error::Internal(m) if m == "fluent#appendBuffer: Buffer full, limit 1048576"),
            "{e:?}"
        );
    }

    #[test]
    fn retry_options_reach_the_policy() {
        let cfg = options::parse(&[
            ("fluentd-retry-wait".to_string(), "250ms".to_string()),
            ("fluentd-max-retries".to_string(), "4".to_string()),
        ])
        .unwrap();
        assert_eq!(
            retry_policy(&cfg),
            RetryPolicy {
                wait: Duration::from_millis(250),
                max_retries: 4
            }
        );
        assert_eq!(
            retry_policy(&options::parse(&[]).unwrap()),
            RetryPolicy::default()
        );
    }

    #[test]
    fn chunk_ids_differ() {
        let mut next = random_chunk_id();
        let (a, b) = (next(), next());
        assert_ne!(a, b);
        assert_ne!(a, [0; 16]);
    }

    #[test]
    fn a_refused_start_fails_and_async_buffers_until_the_server_is_back() {
        use burrow_plugin_sdk::testing::{self, FakeHost};
        let host = FakeHost::new();
        let addr = "tcp://127.0.0.1:24224";
        host.refuse(addr);
        let e = host.open::<FluentdDriver>(&[]).err().unwrap();
        assert!(
            matches!(&e, Error::Unavailable(m) if m == "failed to initialize logging driver: dial tcp://127.0.0.1:24224: connect: connection refused"),
            "{e:?}"
        );
        let opts = [("fluentd-async", "true"), ("fluentd-retry-wait", "1ms")];
        let mut d: FluentdDriver = host.open(&opts).unwrap();
        d.write(testing::lines(&["a"])).unwrap();
        assert!(host.sent(addr).is_empty(), "buffered while refused");
        host.accept(addr);
        std::thread::sleep(Duration::from_millis(5));
        d.flush().unwrap();
        let sent = host.sent(addr);
        assert_eq!(sent.len(), 1, "{sent:?}");
        let has = |needle: &[u8]| sent[0].windows(needle.len()).any(|w| w == needle);
        assert!(has(b"\xa3log\xa1a"), "the line as the record's log");
        assert!(has(b"\xace41187040f57"), "tagged with the short id");
        assert!(
            has(b"\xaecontainer_name\xa4/web"),
            "Docker's container_name"
        );
    }
}
