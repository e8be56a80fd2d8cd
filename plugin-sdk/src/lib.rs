//! The burrow plugin SDK.
//!
//! Plugin authors depend on this crate, never on burrow itself. It carries the WIT worlds
//! (`wit/burrow.wit`: `log-driver` and `network-driver`, package `burrow:plugin@1.0.0`) and
//! the guest bindings generated from them. The doc comments in `wit/burrow.wit` are the
//! contract; the Rust types here are generated from it one to one (WIT `kebab-case` becomes
//! Rust `snake_case` fields and `CamelCase` types).
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2`:
//!
//! ```text
//! rustup target add wasm32-wasip2
//! cargo build --release --target wasm32-wasip2
//! burrow plugin install target/wasm32-wasip2/release/NAME.wasm --grant log-dir
//! ```
//!
//! burrow's `examples/log-plugin/` is a complete template to copy, with a README on the
//! worlds and capabilities.
//!
//! # A log driver
//!
//! Implement [`log::driver::LogDriver`] on the type that serves one container, and export it
//! with [`log_driver!`]. The SDK makes the rest of the WIT world from it: `describe` from
//! its [`Spec`](log::driver::Spec), `validate` from its declared options
//! ([`log::opts`]) and its `config`, `can-read` and a reader that refuses (the host then
//! keeps a local cache so that `burrow logs` works). The crate needs
//! `crate-type = ["cdylib"]`.
//!
//! ```
//! use burrow_plugin_sdk::log::driver::{LogDriver, Needs, Spec};
//! use burrow_plugin_sdk::log::opts::{Opt, Options};
//! use burrow_plugin_sdk::log::{Container, Entry, Error, host};
//!
//! /// Counts lines and keeps nothing but a warning every `every` lines.
//! pub struct Counter {
//!     lines: u64,
//!     every: u64,
//! }
//!
//! impl LogDriver for Counter {
//!     const SPEC: Spec = Spec {
//!         name: "counter",
//!         description: "counts lines and keeps nothing",
//!         needs: Needs::NOTHING,
//!         // Docker's wording for a bad value; the host shows it verbatim at `create`.
//!         options: &[Opt::int("counter-every")
//!             .default("1000")
//!             .at_least(1, "counter-every must be a positive number")],
//!     };
//!
//!     type Config = u64;
//!
//!     fn config(opts: &Options) -> Result<u64, Error> {
//!         Ok(opts.int("counter-every").unwrap_or(1000) as u64)
//!     }
//!
//!     fn open(_c: &Container, every: u64) -> Result<Self, Error> {
//!         Ok(Counter { lines: 0, every })
//!     }
//!
//!     fn write(&mut self, batch: Vec<Entry>) -> Result<(), Error> {
//!         for _ in &batch {
//!             self.lines += 1;
//!             if self.lines % self.every == 0 {
//!                 host::warn(&format!("{} lines", self.lines));
//!             }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! burrow_plugin_sdk::log_driver!(Counter);
//!
//! // `cargo test` runs the driver natively against a fake host:
//! use burrow_plugin_sdk::testing::{self, FakeHost};
//! let host = FakeHost::new();
//! let mut c: Counter = host.open(&[("counter-every", "2")]).unwrap();
//! c.write(testing::lines(&["a", "b", "c"])).unwrap();
//! assert_eq!(host.diag().len(), 1);
//! let e = host.validate::<Counter>(&[("counter-every", "0")]).unwrap_err();
//! assert_eq!(e.message(), "counter-every must be a positive number");
//! ```
//!
//! What else the SDK gives a driver:
//!
//! - [`log::host`]: the log directory, diagnostics, connections, HTTP and secrets, as plain
//!   functions (in tests, the fake host's);
//! - [`log::line`]: stream names, where chunks of a long line start and end, the default
//!   tag;
//! - [`time`]: RFC 3339 with nanoseconds as Docker writes it, syslog's layouts, the
//!   calendar;
//! - [`go`]: Go's parsers with Go's messages (`strconv`, durations, go-units sizes);
//! - [`log::resume`]: skipping what a failed batch already delivered when the host offers
//!   it again;
//! - [`log::errors`]: an error chain on one line, a host failure as a Rust error;
//! - [`testing`] (native builds): the fake host, test containers and entries.
//!
//! A driver that reads its lines back (json-file) implements the WIT
//! [`log::GuestReader`] itself and names it: `log_driver!(MyDriver, reader = MyReader)`.
//! The raw WIT traits ([`log::Guest`], [`log::GuestLogger`]) remain available, with
//! [`log::export_log_driver!`], for a driver that wants none of the above.
//!
//! # What the host promises
//!
//! - `describe` runs once per process with nothing granted; `validate` checks `--log-opt`s
//!   at `create` (the host has removed `mode`, `max-buffer-size` and `cache-*`).
//! - `write` gets batches of at most 1000 entries or 256 KiB, oldest first, under a 5 s
//!   deadline. Return [`log::Error::Unavailable`] when the destination is down: with
//!   `mode=blocking` the host offers the same batch again after a backoff (100 ms doubling
//!   to 2 s; [`log::resume`] skips what an earlier call delivered), with `mode=non-blocking`
//!   it drops and counts it. Any other error drops the batch and counts its lines as lost;
//!   the instance keeps its state. After a trap the host sends the batch once more on a
//!   fresh instance; after a timeout it drops the batch and the next call starts a fresh
//!   instance.
//! - An [`log::Entry`]'s `line` has no trailing newline. Lines over 16 KiB arrive as chunks
//!   ([`log::Partial`]: shared `id` and timestamp, `ordinal` from 1, `last` on the final
//!   one); an unterminated last line arrives as a chunk with `last: false`.
//! - `flush` is called at least once a second while lines flow, and before the logger is
//!   dropped.
//! - Host imports ([`log::host`]) work only as far as the plugin asked for and the user
//!   granted. On native builds (unit tests) they reach the [`testing::FakeHost`] of the
//!   test's thread; the raw WIT imports ([`log::diag`], [`log::endpoints`], …) are stubs
//!   there that panic.
//!
//! # A network driver
//!
//! Implement [`net::Guest`] and export it with [`net::export_network_driver!`]. A network
//! driver computes and the host applies: `setup` and `teardown` return a [`net::Plan`],
//! plain data that the host validates against what it owns before carrying it out.
//! `examples/net-plugin` is a complete one to copy; users install it with `burrow plugin
//! install` and use it with `burrow network create --driver NAME`.
//!
//! - `create` fills in a new network (its bridge's name in `iface`, subnets) or refuses it
//!   with [`net::Error::InvalidConfig`], shown verbatim. The host then checks the subnets
//!   against the other networks' and fills in missing gateways; it hands out the addresses.
//! - `setup` gets the container's address(es) in `ips` and its interface name (`eth0`,
//!   `eth1`, …) in `ifname`. Host-side links may be named `veth…`, `br-…` or the network's
//!   `iface` (never `lo` or `tap0`, the network holder's own); host-side addresses only on
//!   links the plan makes; no host routes; host sysctls only for forwarding and the plan's
//!   links. A plan that breaks a rule is refused before any step runs.
//! - Each call runs on a fresh instance with nothing granted, under a memory cap and a 5 s
//!   deadline; a trap or timeout fails that call (the container does not start).

/// Bindings for the `log-driver` world.
pub mod log {
    wit_bindgen::generate!({
        world: "log-driver",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export_log_driver",
        default_bindings_module: "burrow_plugin_sdk::log",
    });
    pub use burrow::plugin::log_types::*;
    pub use burrow::plugin::types::{Capabilities, Error, Kv, PluginInfo};
    pub use burrow::plugin::{diag, endpoints, http, secrets};
    pub use exports::burrow::plugin::logging::{Guest, GuestLogger, GuestReader, Logger, Reader};

    pub mod driver;
    pub mod errors;
    pub mod host;
    pub mod line;
    mod no_reader;
    pub mod opts;
    pub mod resume;
    pub use errors::{TransportError, chain};
    pub use no_reader::NoReader;

    impl Capabilities {
        /// Asks for nothing: no files, no network, no HTTP, no secrets.
        pub fn none() -> Capabilities {
            Capabilities {
                log_dir: false,
                network: false,
                default_addresses: vec![],
                http_patterns: vec![],
                http: false,
                secrets: vec![],
            }
        }
    }
}

pub mod go;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod time;

/// Bindings for the `network-driver` world.
pub mod net {
    wit_bindgen::generate!({
        world: "network-driver",
        path: "wit",
        // One set of shared types for both worlds (`Capabilities::none()` and the like).
        with: {
            "burrow:plugin/types@1.0.0": crate::log::burrow::plugin::types,
        },
        pub_export_macro: true,
        export_macro_name: "export_network_driver",
        default_bindings_module: "burrow_plugin_sdk::net",
    });
    pub use crate::log::{Capabilities, Error, Kv, PluginInfo};
    pub use burrow::plugin::diag;
    pub use burrow::plugin::net_types::*;
    pub use exports::burrow::plugin::networking::Guest;
}
