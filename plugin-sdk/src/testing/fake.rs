//! The fake host's state (one per thread, installed by `FakeHost::new`) and the native side of
//! `log::host`.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;

use crate::log::Error;
use crate::log::diag::Level;
use crate::log::endpoints::TlsConfig;
use crate::log::http::{Request, Response};

const NO_HOST: &str = "no FakeHost on this thread: a native build has no burrow host; \
                       create a burrow_plugin_sdk::testing::FakeHost at the start of the test";

pub(crate) type Responder = Box<dyn FnMut(&[u8]) -> Vec<u8>>;
pub(crate) type HttpHandler = Box<dyn FnMut(&Request) -> Result<Response, Error>>;

/// What the fake host knows and has seen.
pub(crate) struct State {
    pub log_dir: PathBuf,
    pub diag: Vec<(Level, String)>,
    pub wires: BTreeMap<String, Wire>,
    pub http: Option<HttpHandler>,
    pub requests: Vec<Request>,
    pub secrets: BTreeMap<String, Vec<u8>>,
}

/// One address: the connections opened to it and what went over them.
#[derive(Default)]
pub(crate) struct Wire {
    pub refused: bool,
    pub opened: usize,
    /// Connections numbered below this one are broken (sends fail, recv sees a reset).
    pub broken_below: usize,
    pub sends: Vec<Vec<u8>>,
    pub tls: Vec<Option<TlsConfig>>,
    pub inbox: VecDeque<u8>,
    pub responder: Option<Responder>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<RefCell<State>>>> = const { RefCell::new(None) };
}

/// Makes `state` the thread's host; returns the one it replaces.
pub(crate) fn install(state: Option<Rc<RefCell<State>>>) -> Option<Rc<RefCell<State>>> {
    CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), state))
}

fn current() -> Rc<RefCell<State>> {
    CURRENT.with(|c| c.borrow().clone()).expect(NO_HOST)
}

pub fn log_dir() -> PathBuf {
    current().borrow().log_dir.clone()
}

/// Recorded by the fake host; without one, printed to the test's stderr (which cargo shows
/// for a failing test).
pub fn diag(level: Level, msg: &str) {
    match CURRENT.with(|c| c.borrow().clone()) {
        Some(s) => s.borrow_mut().diag.push((level, msg.to_string())),
        None => eprintln!("plugin diag {level:?}: {msg}"),
    }
}

pub fn http_send(req: &Request) -> Result<Response, Error> {
    let state = current();
    state.borrow_mut().requests.push(req.clone());
    // Taken out while it runs, so that it may look at the host itself.
    let handler = state.borrow_mut().http.take();
    let Some(mut handler) = handler else {
        return Err(Error::Unavailable(format!(
            "Post \"{}\": dial tcp: connection refused (the fake host has no HTTP handler: \
             call FakeHost::on_http)",
            req.url
        )));
    };
    let reply = handler(req);
    state.borrow_mut().http.get_or_insert(handler);
    reply
}

pub fn secret(name: &str) -> Result<Vec<u8>, Error> {
    current()
        .borrow()
        .secrets
        .get(name)
        .cloned()
        .ok_or_else(|| Error::Denied(format!("secret {name:?} was not granted")))
}

/// A connection to the fake host's record of `address`.
pub struct Conn {
    state: Rc<RefCell<State>>,
    address: String,
    number: usize,
}

impl Conn {
    pub fn open(address: &str, tls: Option<&TlsConfig>, _timeout_ms: u32) -> Result<Conn, Error> {
        let state = current();
        let number = {
            let mut s = state.borrow_mut();
            let wire = s.wires.entry(address.to_string()).or_default();
            if wire.refused {
                return Err(Error::Unavailable(format!(
                    "dial {address}: connect: connection refused"
                )));
            }
            wire.tls.push(tls.cloned());
            wire.opened += 1;
            wire.opened - 1
        };
        Ok(Conn {
            state,
            address: address.to_string(),
            number,
        })
    }

    fn broken(&self, wire: &Wire) -> bool {
        self.number < wire.broken_below
    }

    pub fn send(&self, data: &[u8]) -> Result<(), Error> {
        let responder = {
            let mut s = self.state.borrow_mut();
            let wire = s.wires.entry(self.address.clone()).or_default();
            if self.broken(wire) {
                return Err(Error::Unavailable(format!(
                    "write {}: broken pipe",
                    self.address
                )));
            }
            wire.sends.push(data.to_vec());
            wire.responder.take()
        };
        if let Some(mut responder) = responder {
            let reply = responder(data);
            let mut s = self.state.borrow_mut();
            let wire = s.wires.entry(self.address.clone()).or_default();
            wire.inbox.extend(reply);
            wire.responder.get_or_insert(responder);
        }
        Ok(())
    }

    pub fn recv(&self, max: u32, _timeout_ms: u32) -> Result<Vec<u8>, Error> {
        let mut s = self.state.borrow_mut();
        let wire = s.wires.entry(self.address.clone()).or_default();
        if self.broken(wire) {
            return Err(Error::Unavailable(format!(
                "read {}: connection reset by peer",
                self.address
            )));
        }
        let n = wire.inbox.len().min(max as usize);
        Ok(wire.inbox.drain(..n).collect())
    }
}
