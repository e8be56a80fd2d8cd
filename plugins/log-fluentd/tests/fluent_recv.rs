//! The driver's encoding and delivery against tests/servers/fluent_recv.py, over std
//! sockets standing in for the host's `endpoints`:
//!
//!     python3 tests/servers/fluent_recv.py --port 24224 --out /tmp/fl.jsonl &
//!     BURROW_TEST_FLUENT_ADDR=tcp://127.0.0.1:24224 BURROW_TEST_FLUENT_OUT=/tmp/fl.jsonl \
//!         cargo test -p log-fluentd --test fluent_recv -- --ignored
//!
//! The unix-socket and failure cases start their own receivers (python3 with msgpack;
//! BURROW_FLUENT_RECV_PY overrides where fluent_recv.py is).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use burrow_plugin_sdk::log::{Entry, Partial, Source};
use log_fluentd::msgpack::Encoder;
use log_fluentd::retry::RetryPolicy;
use log_fluentd::sender::{Connector, SendError, Sender, Transport, TransportError};
use serde_json::{Value, json};

const SKIP: &str = "needs BURROW_TEST_FLUENT_ADDR and BURROW_TEST_FLUENT_OUT (a running tests/servers/fluent_recv.py)";
const ID: &str = "1de4280a76da0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4a22";
const T: u64 = 1_795_333_798_906_742_166;

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

fn err(e: impl std::fmt::Display) -> TransportError {
    TransportError {
        message: e.to_string(),
    }
}

impl Transport for Stream {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        match self {
            Stream::Tcp(s) => s.write_all(data).map_err(err),
            Stream::Unix(s) => s.write_all(data).map_err(err),
        }
    }
    fn recv(&mut self, max: usize, timeout: Duration) -> Result<Vec<u8>, TransportError> {
        let mut buf = vec![0; max];
        let timeout = Some(timeout.max(Duration::from_millis(1)));
        let n = match self {
            Stream::Tcp(s) => s.set_read_timeout(timeout).and_then(|_| s.read(&mut buf)),
            Stream::Unix(s) => s.set_read_timeout(timeout).and_then(|_| s.read(&mut buf)),
        };
        match n {
            Ok(0) => Err(err("connection closed by peer")),
            Ok(n) => {
                buf.truncate(n);
                Ok(buf)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(vec![]),
            Err(e) => Err(err(e)),
        }
    }
}

/// Dials the endpoint address the plugin would hand to `endpoints`.
struct StdConnector(String);

impl Connector for StdConnector {
    type Conn = Stream;
    fn connect(&mut self) -> Result<Stream, TransportError> {
        match self.0.split_once("://") {
            Some(("tcp", hp)) => TcpStream::connect(hp).map(Stream::Tcp).map_err(err),
            Some(("unix", path)) => UnixStream::connect(path).map(Stream::Unix).map_err(err),
            _ => panic!("unexpected address {}", self.0),
        }
    }
}

fn encoder(tag: &str, sub_second: bool) -> Encoder {
    Encoder {
        tag: tag.into(),
        container_id: ID.into(),
        container_name: "/fl1".into(),
        attrs: vec![("team".into(), "a".into())],
        sub_second,
    }
}

fn sender(
    address: &str,
    tag: &str,
    sub_second: bool,
    ack: Option<Duration>,
) -> Sender<StdConnector> {
    let mut n = 0u8;
    Sender::new(
        StdConnector(address.into()),
        address.into(),
        encoder(tag, sub_second),
        ack,
        Box::new(move || {
            n = n.wrapping_add(1);
            let mut id = [0xa5; 16];
            id[0] = n;
            id[1..5].copy_from_slice(&std::process::id().to_be_bytes());
            id
        }),
    )
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

/// The events `out` holds for `tag`, once there are `n` (or after a few seconds).
fn events(out: &Path, tag: &str, n: usize, wait: Duration) -> Vec<Value> {
    let deadline = Instant::now() + wait;
    loop {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        let got: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
            .filter(|v| v["tag"] == tag)
            .collect();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn external() -> (String, PathBuf) {
    let addr = std::env::var("BURROW_TEST_FLUENT_ADDR").expect(SKIP);
    let out = std::env::var("BURROW_TEST_FLUENT_OUT").expect(SKIP);
    (addr, PathBuf::from(out))
}

fn tag(case: &str) -> String {
    format!("it.{}.{case}", std::process::id())
}

/// A fluent_recv.py of our own on a unix socket, killed on drop.
struct Receiver {
    child: Child,
    dir: PathBuf,
}

impl Receiver {
    fn start(name: &str, extra: &[&str]) -> Receiver {
        let _ = external();
        let script = std::env::var("BURROW_FLUENT_RECV_PY").unwrap_or_else(|_| {
            format!(
                "{}/../../tests/servers/fluent_recv.py",
                env!("CARGO_MANIFEST_DIR")
            )
        });
        let dir = std::env::temp_dir().join(format!("burrow-fl-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("python3")
            .arg(&script)
            .arg("--socket")
            .arg(dir.join("fwd.sock"))
            .arg("--out")
            .arg(dir.join("out.jsonl"))
            .arg("--ready-file")
            .arg(dir.join("ready"))
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run python3 {script}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dir.join("ready").exists() {
            assert!(Instant::now() < deadline, "{script} did not become ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        Receiver { child, dir }
    }
    fn address(&self) -> String {
        format!("unix://{}", self.dir.join("fwd.sock").display())
    }
    fn out(&self) -> PathBuf {
        self.dir.join("out.jsonl")
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn record(source: &str, log: &str) -> Value {
    json!({"container_id": ID, "container_name": "/fl1", "source": source, "log": log, "team": "a"})
}

#[test]
#[ignore = "needs BURROW_TEST_FLUENT_ADDR (tests/servers/fluent_recv.py)"]
fn tcp_batch_of_lines_and_partials_in_one_send() {
    let (addr, out) = external();
    let t = tag("lines");
    let mut s = sender(&addr, &t, false, None);
    s.connect().unwrap();
    let p = |ordinal, last| {
        Some(Partial {
            id: "pid1".into(),
            ordinal,
            last,
        })
    };
    s.write(&[
        entry("hello", Source::Stdout, None),
        entry("", Source::Stdout, None),
        entry("oops", Source::Stderr, None),
        entry(&"A".repeat(16384), Source::Stdout, p(1, false)),
        entry("tail", Source::Stdout, p(2, true)),
    ])
    .unwrap();
    let got = events(&out, &t, 5, Duration::from_secs(5));
    let partial = |log: &str, ordinal: &str, last: &str| {
        let mut r = record("stdout", log);
        r["partial_message"] = json!("true");
        r["partial_id"] = json!("pid1");
        r["partial_ordinal"] = json!(ordinal);
        r["partial_last"] = json!(last);
        r
    };
    let want: Vec<Value> = [
        record("stdout", "hello"),
        record("stdout", ""),
        record("stderr", "oops"),
        partial(&"A".repeat(16384), "1", "false"),
        partial("tail", "2", "true"),
    ]
    .into_iter()
    .map(|r| json!({"mode": "Message", "tag": t, "time": 1_795_333_798, "record": r, "option": {}}))
    .collect();
    assert_eq!(got, want);
}

#[test]
#[ignore = "needs BURROW_TEST_FLUENT_ADDR (tests/servers/fluent_recv.py)"]
fn tcp_sub_second_time_with_acks() {
    let (addr, out) = external();
    let t = tag("ack");
    let mut s = sender(&addr, &t, true, Some(Duration::from_secs(2)));
    s.write(&[
        entry("one", Source::Stdout, None),
        entry("two", Source::Stdout, None),
    ])
    .unwrap();
    let got = events(&out, &t, 2, Duration::from_secs(5));
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["time"], json!([1_795_333_798u64, 906_742_166u64]));
    assert_eq!(got[1]["record"], record("stdout", "two"));
    let chunks: Vec<&str> = got
        .iter()
        .map(|g| g["option"]["chunk"].as_str().unwrap())
        .collect();
    assert_eq!(chunks[0].len(), 24);
    assert_ne!(chunks[0], chunks[1]);
}

#[test]
#[ignore = "needs BURROW_TEST_FLUENT_ADDR (tests/servers/fluent_recv.py)"]
fn unix_socket_with_acks() {
    let r = Receiver::start("unix", &[]);
    let t = tag("unix");
    let mut s = sender(&r.address(), &t, false, Some(Duration::from_secs(2)));
    s.connect().unwrap();
    s.write(&[entry("via unix", Source::Stdout, None)]).unwrap();
    let got = events(&r.out(), &t, 1, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["record"], record("stdout", "via unix"));
    assert_eq!(got[0]["time"], json!(1_795_333_798u64));
}

#[test]
#[ignore = "needs BURROW_TEST_FLUENT_ADDR (tests/servers/fluent_recv.py)"]
fn missing_ack_resends_once_then_fails() {
    let r = Receiver::start("noack", &["--no-ack"]);
    let t = tag("noack");
    let mut s = sender(&r.address(), &t, false, Some(Duration::from_millis(300)));
    let e = s.write(&[entry("x", Source::Stdout, None)]).unwrap_err();
    assert!(matches!(e, SendError::AckTimeout { .. }), "{e:?}");
    let got = events(&r.out(), &t, 2, Duration::from_secs(2));
    assert_eq!(got.len(), 2, "sent, then resent once on a new connection");
    assert_eq!(got[0]["option"], got[1]["option"], "same chunk both times");
}

#[test]
#[ignore = "needs BURROW_TEST_FLUENT_ADDR (tests/servers/fluent_recv.py)"]
fn dropped_connection_is_replaced_and_the_event_resent() {
    // The receiver closes each connection, unacked, at its 2nd entry.
    let r = Receiver::start("drop", &["--drop-after", "2"]);
    let t = tag("drop");
    let mut s = sender(&r.address(), &t, false, Some(Duration::from_secs(2)));
    s.write(&[
        entry("a", Source::Stdout, None),
        entry("b", Source::Stdout, None),
    ])
    .unwrap();
    let got = events(&r.out(), &t, 2, Duration::from_secs(2));
    let logs: Vec<&str> = got
        .iter()
        .map(|g| g["record"]["log"].as_str().unwrap())
        .collect();
    assert_eq!(logs, ["a", "b"]);
}

#[test]
#[ignore = "needs BURROW_TEST_FLUENT_ADDR (tests/servers/fluent_recv.py)"]
fn closed_on_accept_is_unavailable() {
    let r = Receiver::start("close", &["--close-on-accept"]);
    let t = tag("close");
    let mut s = sender(&r.address(), &t, false, Some(Duration::from_secs(1)));
    let e = s.write(&[entry("x", Source::Stdout, None)]).unwrap_err();
    assert!(
        matches!(e, SendError::AckClosed { .. } | SendError::Write { .. }),
        "{e:?}"
    );
    assert!(events(&r.out(), &t, 1, Duration::from_millis(300)).is_empty());
}

#[test]
#[ignore = "needs BURROW_TEST_FLUENT_ADDR (tests/servers/fluent_recv.py)"]
fn async_buffers_until_the_server_comes_up() {
    let name = "async";
    // Where Receiver::start will listen, before it does.
    let socket = std::env::temp_dir()
        .join(format!("burrow-fl-{}-{name}", std::process::id()))
        .join("fwd.sock");
    let address = format!("unix://{}", socket.display());
    let t = tag(name);
    let mut s = sender(&address, &t, false, Some(Duration::from_secs(2)))
        .with_retry(RetryPolicy {
            wait: Duration::from_millis(50),
            max_retries: 100,
        })
        .with_async_buffer(1024 * 1024);
    s.write(&[entry("one", Source::Stdout, None)]).unwrap();
    s.write(&[entry("two", Source::Stderr, None)]).unwrap();
    assert_eq!(s.pending().unwrap().len(), 2);

    let r = Receiver::start(name, &[]);
    assert_eq!(r.address(), address);
    std::thread::sleep(Duration::from_millis(60));
    s.flush().unwrap();
    assert!(s.pending().unwrap().is_empty());
    let got = events(&r.out(), &t, 2, Duration::from_secs(5));
    let records: Vec<&Value> = got.iter().map(|g| &g["record"]).collect();
    assert_eq!(
        records,
        [&record("stdout", "one"), &record("stderr", "two")]
    );
}

#[test]
#[ignore = "needs BURROW_TEST_FLUENT_ADDR (tests/servers/fluent_recv.py)"]
fn refused_connection_keeps_the_os_error() {
    let _ = external();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut s = sender(&format!("tcp://127.0.0.1:{port}"), "t", false, None);
    let e = s.connect().unwrap_err();
    let SendError::Connect { source, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(source.message.contains("Connection refused"), "{source}");
}
