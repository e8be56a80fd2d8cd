//! An in-process fake host, so that `cargo test` of a driver crate runs the driver's own code
//! natively: its files go to a temporary log directory, its connections and HTTP requests
//! to recorders the test reads and scripts, its diagnostics to a list.
//!
//! Native builds only: a component never contains it, and the real host is never replaced
//! silently (without a `FakeHost` on the thread, the host functions panic and say so).
//!
//! ```
//! use burrow_plugin_sdk::log::driver::{LogDriver, Needs, Spec};
//! use burrow_plugin_sdk::log::opts::Options;
//! use burrow_plugin_sdk::log::{host, line, Container, Entry, Error};
//! use burrow_plugin_sdk::testing::{self, FakeHost};
//!
//! /// Sends each line to the default address, as is.
//! pub struct Echo(host::Conn);
//!
//! impl LogDriver for Echo {
//!     const SPEC: Spec = Spec {
//!         name: "echo",
//!         description: "sends each line over tcp",
//!         needs: Needs::network(&["tcp://127.0.0.1:7000"]),
//!         options: &[],
//!     };
//!     type Config = ();
//!     fn config(_: &Options) -> Result<(), Error> {
//!         Ok(())
//!     }
//!     fn open(_: &Container, _: ()) -> Result<Self, Error> {
//!         Ok(Echo(host::Conn::open("tcp://127.0.0.1:7000", None, 1000)?))
//!     }
//!     fn write(&mut self, batch: Vec<Entry>) -> Result<(), Error> {
//!         let mut buf = Vec::new();
//!         batch.iter().for_each(|e| line::push_line(e, &mut buf));
//!         self.0.send(&buf)
//!     }
//! }
//!
//! let host = FakeHost::new();
//! let mut d: Echo = host.open(&[]).unwrap();
//! d.write(testing::lines(&["a", "b"])).unwrap();
//! assert_eq!(host.sent("tcp://127.0.0.1:7000"), [b"a\nb\n".to_vec()]);
//!
//! host.refuse("tcp://127.0.0.1:7000");
//! let e = host.open::<Echo>(&[]).err().unwrap();
//! assert_eq!(e.message(), "dial tcp://127.0.0.1:7000: connect: connection refused");
//! ```

pub(crate) mod fake;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::log::diag::Level;
use crate::log::driver::{self, LogDriver};
use crate::log::endpoints::TlsConfig;
use crate::log::http::{Request, Response};
use crate::log::{Container, Entry, Error, HostInfo, Kv, Partial, Source};
use fake::State;

/// 2026-11-22T07:48:58.969041395Z: the time of [`stdout`], [`stderr`] and the first of
/// [`lines`].
pub const T0: u64 = 1_795_333_738_969_041_395;

/// The fake host of the current thread, from `new` until dropped. Its log directory is a
/// fresh temporary directory, removed on drop.
pub struct FakeHost {
    state: Rc<RefCell<State>>,
    previous: Option<Rc<RefCell<State>>>,
}

impl Default for FakeHost {
    fn default() -> Self {
        FakeHost::new()
    }
}

impl FakeHost {
    /// Creates the fake host and makes it the thread's host.
    pub fn new() -> FakeHost {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "burrow-fake-host-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!(
                "cannot create the fake log directory {}: {e}",
                dir.display()
            );
        }
        let state = Rc::new(RefCell::new(State {
            log_dir: dir,
            diag: Vec::new(),
            wires: Default::default(),
            http: None,
            requests: Vec::new(),
            secrets: Default::default(),
        }));
        let previous = fake::install(Some(state.clone()));
        FakeHost { state, previous }
    }

    /// The container's log directory ([`host::log_dir`](crate::log::host::log_dir)).
    pub fn log_dir(&self) -> PathBuf {
        self.state.borrow().log_dir.clone()
    }

    /// The bytes of `name` in the log directory; panics when it cannot be read.
    pub fn file(&self, name: &str) -> Vec<u8> {
        let path = self.log_dir().join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// `file` as text (invalid UTF-8 replaced).
    pub fn text(&self, name: &str) -> String {
        String::from_utf8_lossy(&self.file(name)).into_owned()
    }

    /// The host's `validate`.
    pub fn validate<D: LogDriver>(&self, opts: &[(&str, &str)]) -> Result<(), Error> {
        driver::validate::<D>(&kvs(opts))
    }

    /// The host's `logger.open` for [`container()`].
    pub fn open<D: LogDriver>(&self, opts: &[(&str, &str)]) -> Result<D, Error> {
        self.open_for(&container(), opts)
    }

    /// The host's `logger.open` for `c`.
    pub fn open_for<D: LogDriver>(&self, c: &Container, opts: &[(&str, &str)]) -> Result<D, Error> {
        driver::open::<D>(c, &kvs(opts))
    }

    /// Refuses connections to `address` from now on.
    pub fn refuse(&self, address: &str) {
        self.with_wire(address, |w| w.refused = true);
    }

    /// Accepts connections to `address` again.
    pub fn accept(&self, address: &str) {
        self.with_wire(address, |w| w.refused = false);
    }

    /// Breaks the connections open to `address`: their sends fail ("broken pipe") and
    /// their reads see a reset. New connections work.
    pub fn break_connections(&self, address: &str) {
        self.with_wire(address, |w| w.broken_below = w.opened);
    }

    /// Answers every send to `address` with what `reply` returns for it (acks, say).
    pub fn respond(&self, address: &str, reply: impl FnMut(&[u8]) -> Vec<u8> + 'static) {
        self.with_wire(address, |w| w.responder = Some(Box::new(reply)));
    }

    /// What each send to `address` carried (one datagram, or one write on a stream), over
    /// every connection.
    pub fn sent(&self, address: &str) -> Vec<Vec<u8>> {
        self.with_wire(address, |w| w.sends.clone())
    }

    /// How many connections to `address` were opened.
    pub fn connections(&self, address: &str) -> usize {
        self.with_wire(address, |w| w.opened)
    }

    /// The TLS settings each connection to `address` was opened with.
    pub fn tls(&self, address: &str) -> Vec<Option<TlsConfig>> {
        self.with_wire(address, |w| w.tls.clone())
    }

    /// Answers HTTP requests; without a handler they fail as a refused connection.
    pub fn on_http(&self, handler: impl FnMut(&Request) -> Result<Response, Error> + 'static) {
        self.state.borrow_mut().http = Some(Box::new(handler));
    }

    /// The HTTP requests sent so far.
    pub fn requests(&self) -> Vec<Request> {
        self.state.borrow().requests.clone()
    }

    /// Grants the secret `name` with this value; an ungranted one is refused (`denied`).
    pub fn set_secret(&self, name: &str, value: &[u8]) {
        self.state
            .borrow_mut()
            .secrets
            .insert(name.to_string(), value.to_vec());
    }

    /// The diagnostics logged so far.
    pub fn diag(&self) -> Vec<(Level, String)> {
        self.state.borrow().diag.clone()
    }

    fn with_wire<T>(&self, address: &str, f: impl FnOnce(&mut fake::Wire) -> T) -> T {
        f(self
            .state
            .borrow_mut()
            .wires
            .entry(address.to_string())
            .or_default())
    }
}

impl Drop for FakeHost {
    fn drop(&mut self) {
        fake::install(self.previous.take());
        let dir = self.log_dir();
        // A leftover temporary directory is no reason to fail a test.
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `("key", "value")` pairs as the host passes options.
pub fn kvs(pairs: &[(&str, &str)]) -> Vec<Kv> {
    pairs
        .iter()
        .map(|(k, v)| Kv {
            key: (*k).into(),
            value: (*v).into(),
        })
        .collect()
}

/// A container as the host describes one: id `e41187040f57d343…`, name `web`, image
/// `busybox`, on host `testhost` (pid 4242, UTC), no tag, no attributes.
pub fn container() -> Container {
    Container {
        id: "e41187040f57d343ff63cae3aa0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b".into(),
        name: "web".into(),
        image_id: "sha256:1c35c441208254cb7c3844ba95a96485388cef9ccc0646d562c7fc026e04c807".into(),
        image_name: "busybox".into(),
        command: "sh -c echo hello".into(),
        hostname: "e41187040f57".into(),
        created_ns: T0 - 1_000_000_000,
        tag: None,
        attrs: vec![],
        host: HostInfo {
            hostname: "testhost".into(),
            pid: 4242,
            utc_offset_secs: 0,
        },
    }
}

/// A whole stdout line at [`T0`].
pub fn stdout(line: &str) -> Entry {
    entry(Source::Stdout, line, T0)
}

/// A whole stderr line at [`T0`].
pub fn stderr(line: &str) -> Entry {
    entry(Source::Stderr, line, T0)
}

/// Whole stdout lines, one millisecond apart from [`T0`].
pub fn lines(lines: &[&str]) -> Vec<Entry> {
    lines
        .iter()
        .zip(0..)
        .map(|(l, i)| entry(Source::Stdout, l, T0 + i * 1_000_000))
        .collect()
}

/// An entry of `source` at `time_ns`.
pub fn entry(source: Source, line: &str, time_ns: u64) -> Entry {
    Entry {
        time_ns,
        source,
        line: line.as_bytes().to_vec(),
        partial: None,
        attrs: vec![],
    }
}

/// `line` as the host delivers a line longer than its limit: chunks of `size` bytes sharing
/// an id and a time, numbered from 1, the last one marked (unless the container's output
/// ended without a newline: `terminated` false).
pub fn chunks(line: &str, size: usize, terminated: bool) -> Vec<Entry> {
    let parts: Vec<&[u8]> = line.as_bytes().chunks(size.max(1)).collect();
    let n = parts.len();
    parts
        .into_iter()
        .zip(1..)
        .map(|(part, ordinal)| Entry {
            time_ns: T0,
            source: Source::Stdout,
            line: part.to_vec(),
            partial: Some(Partial {
                id: "fake-partial-1".into(),
                ordinal,
                last: terminated && ordinal as usize == n,
            }),
            attrs: vec![],
        })
        .collect()
}

/// Checks a driver's [`Spec`](crate::log::driver::Spec): a name, options declared once
/// each, and defaults that parse. Panics with what is wrong, for a one-line test.
pub fn check_spec<D: LogDriver>() {
    let spec = D::SPEC;
    assert!(!spec.name.is_empty(), "the driver has no name");
    for (i, o) in spec.options.iter().enumerate() {
        assert!(
            !spec.options[..i].iter().any(|p| p.name == o.name),
            "log opt {:?} is declared twice",
            o.name
        );
        if let Some(def) = o.default {
            if let Err(e) = o.check(def) {
                panic!("the default of log opt {:?} does not parse: {e}", o.name);
            }
        }
    }
}
