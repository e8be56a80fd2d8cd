use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use serde_json::Value;

use super::*;
use crate::api::{HttpRequest, HttpResponse, TransportError};
use crate::options::Endpoint;
use crate::sigv4::Credentials;

#[derive(Clone, Default)]
struct FakeClock(Rc<Cell<i64>>);

impl FakeClock {
    fn set(&self, ms: i64) {
        self.0.set(ms);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.get()
    }
}

type Reply = Result<HttpResponse, TransportError>;

/// Records every request; answers from a script, then 200 `{}`.
#[derive(Clone, Default)]
struct FakeServer {
    sent: Rc<RefCell<Vec<HttpRequest>>>,
    replies: Rc<RefCell<VecDeque<Reply>>>,
}

impl FakeServer {
    fn reply(&self, r: Reply) {
        self.replies.borrow_mut().push_back(r);
    }
    fn error(&self, status: u16, code: &str, msg: &str) {
        self.reply(Ok(HttpResponse {
            status,
            headers: vec![],
            body: format!(r#"{{"__type":"{code}","message":"{msg}"}}"#).into_bytes(),
        }));
    }
    fn targets(&self) -> Vec<String> {
        self.sent
            .borrow()
            .iter()
            .map(|r| {
                let t = r.headers.iter().find(|(k, _)| k == "x-amz-target").unwrap();
                t.1.trim_start_matches("Logs_20140328.").to_string()
            })
            .collect()
    }
    /// The messages of every PutLogEvents call, in order.
    fn puts(&self) -> Vec<Vec<(i64, String)>> {
        self.sent
            .borrow()
            .iter()
            .filter(|r| r.headers.iter().any(|(_, v)| v.ends_with("PutLogEvents")))
            .map(|r| {
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                v["logEvents"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        (
                            e["timestamp"].as_i64().unwrap(),
                            e["message"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
            .collect()
    }
}

impl Transport for FakeServer {
    fn send(&mut self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.sent.borrow_mut().push(req);
        self.replies
            .borrow_mut()
            .pop_front()
            .unwrap_or(Ok(HttpResponse {
                status: 200,
                headers: vec![],
                body: b"{}".to_vec(),
            }))
    }
}

fn client() -> Client {
    Client {
        endpoint: Endpoint::parse("http://127.0.0.1:5001").unwrap(),
        region: "us-east-1".into(),
        creds: Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
            session_token: None,
        },
        format: None,
    }
}

fn cfg() -> StreamConfig {
    StreamConfig {
        group: "g".into(),
        stream: "s".into(),
        create_group: false,
        create_stream: true,
        multiline: None,
        flush_interval: Duration::from_secs(5),
    }
}

fn open_with(c: StreamConfig) -> (Shipper<FakeServer, FakeClock>, FakeServer, FakeClock) {
    let server = FakeServer::default();
    let clock = FakeClock::default();
    clock.set(1_000_000);
    let s = Shipper::open(client(), server.clone(), clock.clone(), c).unwrap();
    (s, server, clock)
}

fn line(text: &str, ms: i64) -> Input {
    Input {
        source: Source::Stdout,
        line: text.as_bytes().to_vec(),
        chunk: None,
        time_ns: ms as u64 * 1_000_000,
    }
}

#[test]
fn open_creates_the_stream() {
    let (_, server, _) = open_with(cfg());
    assert_eq!(server.targets(), ["CreateLogStream"]);
    let body: Value = serde_json::from_slice(&server.sent.borrow()[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"logGroupName":"g","logStreamName":"s"})
    );
}

#[test]
fn open_accepts_an_existing_stream_and_skips_creation_when_asked() {
    let server = FakeServer::default();
    server.error(
        400,
        "ResourceAlreadyExistsException",
        "The specified log stream already exists",
    );
    assert!(Shipper::open(client(), server.clone(), FakeClock::default(), cfg()).is_ok());
    let none = FakeServer::default();
    let c = StreamConfig {
        create_stream: false,
        ..cfg()
    };
    assert!(Shipper::open(client(), none.clone(), FakeClock::default(), c).is_ok());
    assert!(none.targets().is_empty());
}

#[test]
fn open_fails_with_dockers_message_when_the_group_is_missing() {
    let server = FakeServer::default();
    server.error(
        400,
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    );
    let err = Shipper::open(client(), server, FakeClock::default(), cfg())
        .err()
        .unwrap();
    assert_eq!(
        chain(&err),
        "failed to create Cloudwatch log stream: ResourceNotFoundException: The specified log group does not exist."
    );
}

#[test]
fn open_creates_a_missing_group_when_asked() {
    let server = FakeServer::default();
    server.error(
        400,
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    );
    server.error(400, "ResourceAlreadyExistsException", "raced");
    let c = StreamConfig {
        create_group: true,
        ..cfg()
    };
    Shipper::open(client(), server.clone(), FakeClock::default(), c).unwrap();
    assert_eq!(
        server.targets(),
        ["CreateLogStream", "CreateLogGroup", "CreateLogStream"]
    );

    let server = FakeServer::default();
    server.error(400, "ResourceNotFoundException", "no group");
    server.error(400, "LimitExceededException", "too many groups");
    let c = StreamConfig {
        create_group: true,
        ..cfg()
    };
    let err = Shipper::open(client(), server, FakeClock::default(), c)
        .err()
        .unwrap();
    assert_eq!(
        chain(&err),
        "failed to create Cloudwatch log group: LimitExceededException: too many groups"
    );
}

#[test]
fn sends_once_the_flush_interval_has_passed() {
    let (mut s, server, clock) = open_with(cfg());
    s.write(vec![
        line("first", 1_000_000),
        line("", 1_000_001),
        line("second", 1_000_002),
    ])
    .unwrap();
    clock.set(1_001_000);
    s.flush().unwrap();
    assert!(server.puts().is_empty(), "held until the interval passes");
    clock.set(1_005_000);
    s.flush().unwrap();
    // The empty line makes no event, as in moby.
    assert_eq!(
        server.puts(),
        vec![vec![
            (1_000_000, "first".to_string()),
            (1_000_002, "second".to_string())
        ]]
    );
    assert_eq!(s.held(), 0);
    // Nothing new: no request.
    clock.set(1_020_000);
    s.flush().unwrap();
    assert_eq!(server.puts().len(), 1);
}

#[test]
fn a_full_batch_goes_out_at_once() {
    let (mut s, server, _) = open_with(cfg());
    let batch: Vec<_> = (0..10_001).map(|i| line("y", 1_000_000 + i)).collect();
    s.write(batch).unwrap();
    let puts = server.puts();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].len(), 10_000);
    assert_eq!(s.held(), 1);
}

#[test]
fn events_in_a_batch_are_sorted_by_timestamp() {
    let (mut s, server, clock) = open_with(cfg());
    s.write(vec![
        line("late", 1_000_009),
        line("early", 1_000_001),
        line("early2", 1_000_001),
    ])
    .unwrap();
    clock.set(1_006_000);
    s.flush().unwrap();
    let msgs: Vec<_> = server.puts()[0].iter().map(|e| e.1.clone()).collect();
    assert_eq!(msgs, ["early", "early2", "late"]);
}

#[test]
fn a_failed_send_keeps_the_events_and_refuses_new_ones_until_it_succeeds() {
    let (mut s, server, clock) = open_with(cfg());
    s.write(vec![line("kept", 1_000_000)]).unwrap();
    clock.set(1_005_000);
    server.reply(Err(TransportError::new("connection refused")));
    let err = s.flush().unwrap_err();
    assert!(matches!(err, ShipError::Put { events: 1, .. }), "{err:?}");
    assert!(
        chain(&err)
            .ends_with("PutLogEvents request to http://127.0.0.1:5001/ failed: connection refused")
    );
    assert_eq!(s.held(), 1);

    // Still down: the new batch is refused whole, so the host keeps it.
    server.error(503, "ServiceUnavailableException", "down");
    assert!(s.write(vec![line("new", 1_005_001)]).is_err());
    assert_eq!(s.held(), 1);

    // Back: the kept batch goes first, then the new entries are taken.
    s.write(vec![line("new", 1_005_001)]).unwrap();
    assert_eq!(
        server.puts().last().unwrap(),
        &vec![(1_000_000, "kept".to_string())]
    );
    clock.set(1_010_001);
    s.flush().unwrap();
    assert_eq!(
        server.puts().last().unwrap(),
        &vec![(1_005_001, "new".to_string())]
    );
    assert_eq!(s.held(), 0);
}

#[test]
fn a_rejected_batch_is_dropped_and_reported() {
    let (mut s, server, clock) = open_with(cfg());
    s.write(vec![line("bad", 1_000_000)]).unwrap();
    clock.set(1_005_000);
    server.error(
        400,
        "InvalidParameterException",
        "Log events in a single PutLogEvents request must be in chronological order.",
    );
    s.flush().unwrap();
    assert_eq!(s.held(), 0);
    let notices = s.take_notices();
    assert!(
        matches!(&notices[..], [Notice::Error(m)] if m.contains("refused 1 log events") && m.contains("InvalidParameterException")),
        "{notices:?}"
    );
}

#[test]
fn close_sends_unfinished_lines_and_multiline_events() {
    let c = StreamConfig {
        multiline: Some(
            crate::multiline::compile(&crate::multiline::strftime_to_regex("%Y-%m-%d")).unwrap(),
        ),
        ..cfg()
    };
    let (mut s, server, _) = open_with(c);
    let mut tail = line("2024-01-03 no newline", 1_000_003);
    tail.chunk = Some(("p9".into(), false));
    s.write(vec![
        line("2024-01-01 start", 1_000_000),
        line("  continuation", 1_000_001),
        line("2024-01-02 next", 1_000_002),
        tail,
    ])
    .unwrap();
    assert!(server.puts().is_empty());
    s.close().unwrap();
    let msgs: Vec<_> = server.puts().concat().into_iter().map(|e| e.1).collect();
    assert_eq!(
        msgs,
        [
            "2024-01-01 start\n  continuation\n",
            "2024-01-02 next\n",
            "2024-01-03 no newline\n"
        ]
    );
}

#[test]
fn a_multiline_event_is_sent_when_it_ages() {
    let c = StreamConfig {
        multiline: Some(crate::multiline::compile("^S").unwrap()),
        ..cfg()
    };
    let (mut s, server, clock) = open_with(c);
    s.write(vec![line("S one", 1_000_000), line("  two", 1_000_100)])
        .unwrap();
    clock.set(1_004_999);
    s.flush().unwrap();
    assert!(server.puts().is_empty());
    clock.set(1_005_000);
    s.flush().unwrap();
    assert_eq!(
        server.puts(),
        vec![vec![(1_000_000, "S one\n  two\n".to_string())]]
    );
}

#[test]
fn close_reports_what_it_could_not_send() {
    let (mut s, server, _) = open_with(cfg());
    s.write(vec![line("x", 1_000_000)]).unwrap();
    server.reply(Err(TransportError::new("refused")));
    assert!(s.close().is_err());
    assert!(matches!(&s.take_notices()[..], [Notice::Error(m)] if m.starts_with("1 log events")));
}

#[test]
fn a_slow_server_leaves_batches_for_the_next_call() {
    struct Slow {
        clock: FakeClock,
        inner: FakeServer,
    }
    impl Transport for Slow {
        fn send(&mut self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
            self.clock.set(self.clock.now_ms() + 2_500);
            self.inner.send(req)
        }
    }
    let clock = FakeClock::default();
    let inner = FakeServer::default();
    let slow = Slow {
        clock: clock.clone(),
        inner: inner.clone(),
    };
    let mut s = Shipper::open(
        client(),
        slow,
        clock.clone(),
        StreamConfig {
            create_stream: false,
            ..cfg()
        },
    )
    .unwrap();
    // Three full batches in one write: two fit the call's budget, the third waits.
    let batch: Vec<_> = (0..40_000).map(|i| line("y", i)).collect();
    s.write(batch).unwrap();
    assert_eq!(inner.puts().len(), 2);
    assert_eq!(s.held(), 20_000);
    assert!(matches!(&s.take_notices()[..], [Notice::Warn(m)] if m.contains("too slowly")));
}
