//! What the host lends a log driver, as plain Rust: the log directory, diagnostics,
//! connections, HTTP and secrets.
//!
//! In the component (wasm32) these call the host's imports (`diag`, `endpoints`, `http`,
//! `secrets` in `wit/burrow.wit`), which work only as far as the driver asked for them in
//! its [`Needs`](super::driver::Needs) and the user granted them. In a native build
//! (`cargo test`) they call the [`FakeHost`](crate::testing::FakeHost) the test created on
//! its thread, so that a driver's own code runs unchanged in its tests; without one they
//! panic and say so.

use std::path::PathBuf;

use super::Error;
use super::diag::Level;
use super::endpoints::TlsConfig;
use super::http::{Request, Response};

/// Where the host preopens the container's log directory when the driver asks for `log-dir`.
pub const LOG_DIR: &str = "/logs";

/// The component's side: the host's imports.
#[cfg(target_arch = "wasm32")]
mod imp {
    use super::*;

    pub use crate::log::endpoints::Conn;

    pub fn log_dir() -> PathBuf {
        PathBuf::from(LOG_DIR)
    }
    pub fn diag(level: Level, msg: &str) {
        crate::log::diag::log(level, msg);
    }
    pub fn http_send(req: &Request) -> Result<Response, Error> {
        crate::log::http::send(req)
    }
    pub fn secret(name: &str) -> Result<Vec<u8>, Error> {
        crate::log::secrets::get(name)
    }
}

/// The native side: the test's fake host.
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::fake as imp;

/// The container's log directory: [`LOG_DIR`] in the component, the fake host's temporary
/// directory in tests.
pub fn log_dir() -> PathBuf {
    imp::log_dir()
}

/// A message in burrow's own log (`BURROW_LOG`), attributed to the plugin.
pub fn diag(level: Level, msg: &str) {
    imp::diag(level, msg);
}

/// [`diag`] at warning level.
pub fn warn(msg: &str) {
    diag(Level::Warn, msg);
}

/// [`diag`] at error level.
pub fn error(msg: &str) {
    diag(Level::Error, msg);
}

/// A connection to an address a log option names (or one of the driver's default
/// addresses): `udp://`, `tcp://`, `unix:///`, `unixgram:///`; `tls` wraps a tcp one.
pub struct Conn(imp::Conn);

impl Conn {
    pub fn open(address: &str, tls: Option<&TlsConfig>, timeout_ms: u32) -> Result<Conn, Error> {
        imp::Conn::open(address, tls, timeout_ms).map(Conn)
    }

    /// Writes all of `data`: one datagram on udp and unixgram.
    pub fn send(&self, data: &[u8]) -> Result<(), Error> {
        self.0.send(data)
    }

    /// Up to `max` bytes; empty on timeout; [`Error::Unavailable`] once the peer closed.
    pub fn recv(&self, max: u32, timeout_ms: u32) -> Result<Vec<u8>, Error> {
        self.0.recv(max, timeout_ms)
    }
}

/// One HTTP request to a URL a log option names or one of the driver's patterns matches.
pub fn http_send(req: &Request) -> Result<Response, Error> {
    imp::http_send(req)
}

/// A named secret the driver asked for and the user granted (e.g. "aws").
pub fn secret(name: &str) -> Result<Vec<u8>, Error> {
    imp::secret(name)
}
