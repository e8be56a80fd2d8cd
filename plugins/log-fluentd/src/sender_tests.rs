use super::*;
use crate::retry::MAX_RETRY_WAIT;
use burrow_plugin_sdk::log::Source;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

const REFUSED: &str = "dial tcp 127.0.0.1:24224: connect: connection refused";

/// Time that moves only when a test (or the fake server) moves it.
#[derive(Clone)]
struct FakeClock(Rc<Cell<Instant>>);

impl FakeClock {
    fn new() -> Self {
        FakeClock(Rc::new(Cell::new(Instant::now())))
    }
    fn advance(&self, d: Duration) {
        self.0.set(self.0.get() + d);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.0.get()
    }
}

/// What the fake server does with the next event.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Ack,
    WrongAck,
    Silent,
    FailSend,
}

struct Wire {
    sent: Vec<Vec<u8>>,
    connects: usize,
    refuse: bool,
    script: VecDeque<Reply>,
    pending: Vec<u8>,
    clock: FakeClock,
    /// How long each send takes.
    send_cost: Duration,
}

type Shared = Rc<RefCell<Wire>>;

fn wire() -> Shared {
    Rc::new(RefCell::new(Wire {
        sent: vec![],
        connects: 0,
        refuse: false,
        script: VecDeque::new(),
        pending: vec![],
        clock: FakeClock::new(),
        send_cost: Duration::ZERO,
    }))
}

struct FakeConn(Shared);
impl Transport for FakeConn {
    fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        let mut w = self.0.borrow_mut();
        w.clock.advance(w.send_cost);
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
            w.pending.extend(ack);
        }
        Ok(())
    }
    /// Replies in pieces of 3 bytes to exercise reassembly; with nothing to say, waits out
    /// the timeout.
    fn recv(&mut self, max: usize, timeout: Duration) -> Result<Vec<u8>, TransportError> {
        let mut w = self.0.borrow_mut();
        if w.pending.is_empty() {
            w.clock.advance(timeout);
            return Ok(vec![]);
        }
        let n = w.pending.len().min(max).min(3);
        Ok(w.pending.drain(..n).collect())
    }
}

struct FakeConnector(Shared);
impl Connector for FakeConnector {
    type Conn = FakeConn;
    fn connect(&mut self) -> Result<FakeConn, TransportError> {
        let mut w = self.0.borrow_mut();
        w.connects += 1;
        w.pending.clear();
        if w.refuse {
            return Err(TransportError {
                message: REFUSED.into(),
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

/// The bytes of `lines` as one unacked send.
fn encoded(lines: &[&str]) -> Vec<u8> {
    let mut out = vec![];
    for l in lines {
        encoder().encode(&entry(l), None, &mut out);
    }
    out
}

fn sender(wire: &Shared, ack: bool) -> Sender<FakeConnector> {
    let mut n = 0u8;
    let clock = wire.borrow().clock.clone();
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
    .with_clock(clock)
}

fn policy(wait_ms: u64, max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        wait: Duration::from_millis(wait_ms),
        max_retries,
    }
}

fn advance(wire: &Shared, ms: u64) {
    wire.borrow().clock.advance(Duration::from_millis(ms));
}

fn connects(wire: &Shared) -> usize {
    wire.borrow().connects
}

#[test]
fn without_ack_a_batch_is_one_send_of_message_mode_events() {
    let wire = wire();
    let mut s = sender(&wire, false);
    s.connect().unwrap();
    s.write(&[entry("a"), entry(""), entry("b")]).unwrap();
    let w = wire.borrow();
    assert_eq!(
        w.sent,
        [encoded(&["a", "", "b"])],
        "empty lines are kept, as Docker's fluentd does"
    );
}

#[test]
fn with_ack_each_event_waits_for_its_chunk() {
    let wire = wire();
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
    let wire = wire();
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
    assert_eq!(
        chain(&e),
        "no ack from the fluentd server at tcp://127.0.0.1:24224 within 50ms"
    );
    assert!(!e.is_final());
    assert_eq!(connects(&wire), 3);
}

#[test]
fn refused_connection_keeps_the_transport_text() {
    let wire = wire();
    wire.borrow_mut().refuse = true;
    let mut s = sender(&wire, false);
    let e = s.connect().unwrap_err();
    assert_eq!(
        chain(&e),
        format!("cannot connect to the fluentd server at tcp://127.0.0.1:24224: {REFUSED}")
    );
    assert!(s.write(&[entry("a")]).is_err());
}

#[test]
fn retried_batch_skips_acked_events() {
    let wire = wire();
    let mut s = sender(&wire, true);
    let batch = [entry("a"), entry("b"), entry("c")];
    wire.borrow_mut().script = [Reply::Ack, Reply::FailSend, Reply::FailSend].into();
    assert!(s.write(&batch).is_err());
    assert_eq!(wire.borrow().sent.len(), 1);
    advance(&wire, 1000);
    s.write(&batch).unwrap();
    let w = wire.borrow();
    assert_eq!(w.sent.len(), 3, "a is not sent again");
    assert!(w.sent[1].windows(2).any(|x| x == b"\xa1b"));
}

#[test]
fn failed_attempts_back_off_by_half_again_each_time() {
    let wire = wire();
    wire.borrow_mut().refuse = true;
    let mut s = sender(&wire, false);
    let batch = [entry("a")];
    assert!(matches!(s.write(&batch), Err(SendError::Connect { .. })));
    assert_eq!(connects(&wire), 1);

    // Docker's default retry-wait is 1 s: a write before then does not dial.
    advance(&wire, 400);
    let e = s.write(&batch).unwrap_err();
    assert_eq!(
        chain(&e),
        format!(
            "the fluentd server at tcp://127.0.0.1:24224 is unavailable; next attempt in 600ms: \
             cannot connect to the fluentd server at tcp://127.0.0.1:24224: {REFUSED}"
        )
    );
    assert!(!e.is_final());
    assert_eq!(connects(&wire), 1);

    advance(&wire, 600);
    assert!(matches!(s.write(&batch), Err(SendError::Connect { .. })));
    assert_eq!(connects(&wire), 2);
    // Then 1.5 s, 2.25 s, ...
    advance(&wire, 1499);
    let e = s.write(&batch).unwrap_err();
    assert!(chain(&e).contains("next attempt in 1ms"), "{e}");
    advance(&wire, 1);
    assert!(s.write(&batch).is_err());
    assert_eq!(connects(&wire), 3);
    advance(&wire, 2249);
    assert!(matches!(s.write(&batch), Err(SendError::Waiting { .. })));
    advance(&wire, 1);

    // A delivery resets the backoff.
    wire.borrow_mut().refuse = false;
    s.write(&batch).unwrap();
    assert_eq!(connects(&wire), 4);
    wire.borrow_mut().refuse = true;
    wire.borrow_mut().script = [Reply::FailSend].into();
    assert!(matches!(s.write(&batch), Err(SendError::Connect { .. })));
    advance(&wire, 999);
    assert!(matches!(s.write(&batch), Err(SendError::Waiting { .. })));
    advance(&wire, 1);
    assert!(matches!(s.write(&batch), Err(SendError::Connect { .. })));
}

#[test]
fn the_wait_stops_growing_at_a_minute() {
    let wire = wire();
    wire.borrow_mut().refuse = true;
    let mut s = sender(&wire, false).with_retry(policy(30_000, 100));
    let batch = [entry("a")];
    assert!(s.write(&batch).is_err());
    advance(&wire, 30_000);
    assert!(s.write(&batch).is_err());
    // 45 s, then 67.5 s capped to 60 s.
    advance(&wire, 45_000);
    assert!(s.write(&batch).is_err());
    let e = s.write(&batch).unwrap_err();
    assert!(chain(&e).contains("next attempt in 1m0s"), "{}", chain(&e));
    advance(&wire, MAX_RETRY_WAIT.as_millis() as u64);
    assert!(matches!(s.write(&batch), Err(SendError::Connect { .. })));
    assert_eq!(connects(&wire), 4);
}

#[test]
fn max_retries_gives_the_batch_up_and_starts_over() {
    let wire = wire();
    wire.borrow_mut().refuse = true;
    let mut s = sender(&wire, false).with_retry(policy(10, 3));
    let batch = [entry("a")];
    for _ in 0..2 {
        let e = s.write(&batch).unwrap_err();
        assert!(!e.is_final(), "{e}");
        advance(&wire, 100);
    }
    let e = s.write(&batch).unwrap_err();
    assert!(e.is_final());
    assert_eq!(
        chain(&e),
        format!(
            "fluent#write: failed to write after 3 attempts: \
             cannot connect to the fluentd server at tcp://127.0.0.1:24224: {REFUSED}"
        )
    );
    // The next batch starts a fresh count, at once.
    assert!(matches!(
        s.write(&[entry("b")]),
        Err(SendError::Connect { .. })
    ));
    assert_eq!(connects(&wire), 4);
}

#[test]
fn a_given_up_batch_is_not_resumed() {
    let wire = wire();
    let mut s = sender(&wire, true).with_retry(policy(10, 1));
    let batch = [entry("a"), entry("b")];
    wire.borrow_mut().script = [Reply::Ack, Reply::Silent, Reply::Silent].into();
    let e = s.write(&batch).unwrap_err();
    assert!(chain(&e).starts_with("fluent#write: failed to write after 1 attempts: no ack"));
    // Should the same batch come again, it is new: "a" goes again.
    s.write(&batch).unwrap();
    assert_eq!(wire.borrow().sent.len(), 5);
}

#[test]
fn flush_without_async_sends_nothing() {
    let wire = wire();
    let mut s = sender(&wire, false);
    s.flush().unwrap();
    assert_eq!(connects(&wire), 0);
}

#[test]
fn async_buffers_while_the_server_is_down_and_flush_sends_in_order() {
    let wire = wire();
    wire.borrow_mut().refuse = true;
    let mut s = sender(&wire, false).with_async_buffer(1024 * 1024);
    s.write(&[entry("a"), entry("b")]).unwrap();
    assert_eq!(connects(&wire), 1);
    // Within the backoff: buffered without dialing.
    advance(&wire, 500);
    s.write(&[entry("c")]).unwrap();
    assert_eq!(connects(&wire), 1);
    let held = s.pending().unwrap();
    assert_eq!(
        (held.len(), held.bytes()),
        (3, encoded(&["a", "b", "c"]).len())
    );
    // Still waiting: flush does not dial either.
    assert!(matches!(s.flush(), Err(SendError::Waiting { .. })));
    assert_eq!(connects(&wire), 1);

    wire.borrow_mut().refuse = false;
    advance(&wire, 500);
    s.flush().unwrap();
    assert_eq!(wire.borrow().sent, [encoded(&["a", "b", "c"])]);
    assert!(s.pending().unwrap().is_empty());
    s.flush().unwrap();
    assert_eq!(wire.borrow().sent.len(), 1, "nothing left to send");
}

#[test]
fn async_sends_buffered_events_before_the_new_batch() {
    let wire = wire();
    wire.borrow_mut().refuse = true;
    let mut s = sender(&wire, false).with_async_buffer(1024);
    s.write(&[entry("old")]).unwrap();
    wire.borrow_mut().refuse = false;
    advance(&wire, 1000);
    s.write(&[entry("new")]).unwrap();
    assert_eq!(wire.borrow().sent, [encoded(&["old"]), encoded(&["new"])]);
    assert!(s.pending().unwrap().is_empty());
}

#[test]
fn async_sends_directly_when_the_server_is_up_whatever_the_limit() {
    let wire = wire();
    let mut s = sender(&wire, false).with_async_buffer(8);
    s.write(&[entry("a longer line than the limit")]).unwrap();
    assert_eq!(wire.borrow().sent.len(), 1);
    assert!(s.pending().unwrap().is_empty());
}

#[test]
fn async_refuses_a_batch_that_does_not_fit_whole() {
    let wire = wire();
    wire.borrow_mut().refuse = true;
    // Room for a, b and one more event.
    let limit = encoded(&["a", "b", "e"]).len();
    let mut s = sender(&wire, false).with_async_buffer(limit);
    s.write(&[entry("a"), entry("b")]).unwrap();
    let e = s.write(&[entry("c"), entry("d")]).unwrap_err();
    assert!(e.is_final(), "the host counts c and d as lost");
    assert_eq!(
        chain(&e),
        format!(
            "fluent#appendBuffer: Buffer full, limit {limit}: \
             the fluentd server at tcp://127.0.0.1:24224 is unavailable; next attempt in 1s: \
             cannot connect to the fluentd server at tcp://127.0.0.1:24224: {REFUSED}"
        )
    );
    assert_eq!(s.pending().unwrap().len(), 2, "none of c and d is kept");
    // One that fits still goes in.
    s.write(&[entry("e")]).unwrap();
    wire.borrow_mut().refuse = false;
    advance(&wire, 1000);
    s.flush().unwrap();
    assert_eq!(wire.borrow().sent, [encoded(&["a", "b", "e"])]);
}

#[test]
fn async_max_retries_drops_the_buffer_and_the_batch() {
    let wire = wire();
    wire.borrow_mut().refuse = true;
    let mut s = sender(&wire, false)
        .with_async_buffer(1024)
        .with_retry(policy(10, 2));
    s.write(&[entry("a"), entry("b")]).unwrap();
    advance(&wire, 10);
    let e = s.write(&[entry("c")]).unwrap_err();
    assert!(e.is_final(), "the host counts c as lost");
    assert_eq!(
        chain(&e),
        format!(
            "fluent#write: failed to write after 2 attempts (dropped 2 buffered events): \
             cannot connect to the fluentd server at tcp://127.0.0.1:24224: {REFUSED}"
        )
    );
    assert!(s.pending().unwrap().is_empty());

    // The same through flush.
    s.write(&[entry("d")]).unwrap();
    advance(&wire, 10);
    let e = s.flush().unwrap_err();
    assert!(chain(&e).contains("(dropped 1 buffered events)"), "{e}");
    assert!(s.pending().unwrap().is_empty());
}

#[test]
fn async_with_acks_drains_one_event_at_a_time_within_the_budget() {
    let wire = wire();
    wire.borrow_mut().refuse = true;
    let mut s = sender(&wire, true).with_async_buffer(1024 * 1024);
    let batch: Vec<Entry> = (0..10).map(|i| entry(&i.to_string())).collect();
    s.write(&batch).unwrap();
    assert_eq!(s.pending().unwrap().len(), 10);
    {
        let mut w = wire.borrow_mut();
        w.refuse = false;
        w.send_cost = Duration::from_millis(300);
    }
    advance(&wire, 1000);
    // Sends start at 0, 300, 600 and 900 ms; at 1.2 s the call stops.
    s.flush().unwrap();
    assert_eq!(wire.borrow().sent.len(), 4);
    assert_eq!(s.pending().unwrap().len(), 6);
    s.flush().unwrap();
    s.flush().unwrap();
    assert!(s.pending().unwrap().is_empty());
    let w = wire.borrow();
    assert_eq!(w.sent.len(), 10);
    assert!(w.sent[9].windows(2).any(|x| x == b"\xa19"), "in order");
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
